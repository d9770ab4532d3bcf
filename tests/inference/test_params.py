"""Sampling parameters: each bound on both sides, the types, the defaults, unknown names, and
the same rules whether a client's parameters are validated or a SamplingParams is built."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from inference.params import (
    MAX_STOP_LENGTH,
    MAX_STOP_STRINGS,
    TEMPERATURE_MAX,
    ParamError,
    SamplingParams,
    params_validate,
)

LIMIT = 1000


def validate(**raw: object):
    return params_validate(raw, max_new_tokens_limit=LIMIT)


def test_nothing_given_is_all_defaults_with_the_limit_as_the_budget():
    expected = {"temperature": 0.0, "top_p": 1.0, "max_new_tokens": LIMIT, "stop": [], "seed": None}
    assert params_validate(None, max_new_tokens_limit=LIMIT) == expected
    assert params_validate({}, max_new_tokens_limit=LIMIT) == expected


def test_every_parameter_given_within_its_bounds_is_kept():
    assert validate(temperature=0.7, top_p=0.9, max_new_tokens=12, stop=["\n\n"], seed=5) == {
        "temperature": 0.7,
        "top_p": 0.9,
        "max_new_tokens": 12,
        "stop": ["\n\n"],
        "seed": 5,
    }


def test_whole_numbers_are_taken_as_temperature_and_top_p_and_stored_as_floats():
    params = validate(temperature=1, top_p=1)
    assert (params["temperature"], params["top_p"]) == (1.0, 1.0)
    assert isinstance(params["temperature"], float)
    assert isinstance(params["top_p"], float)


@pytest.mark.parametrize("temperature", [0, 0.0, 1.5, TEMPERATURE_MAX])
def test_temperature_from_0_to_2_is_accepted(temperature):
    assert validate(temperature=temperature)["temperature"] == temperature


@pytest.mark.parametrize("temperature", [-0.01, 2.01, 5, math.inf, -math.inf, math.nan])
def test_temperature_outside_0_to_2_is_refused(temperature):
    with pytest.raises(ParamError, match=r"^temperature must be between 0 and 2\.$"):
        validate(temperature=temperature)


@pytest.mark.parametrize("top_p", [1e-6, 0.5, 1, 1.0])
def test_top_p_above_0_up_to_1_is_accepted(top_p):
    assert validate(top_p=top_p)["top_p"] == top_p


@pytest.mark.parametrize("top_p", [0, 0.0, -0.5, 1.01, math.inf, math.nan])
def test_top_p_at_0_or_above_1_is_refused(top_p):
    with pytest.raises(ParamError, match=r"^top_p must be above 0 and at most 1\.$"):
        validate(top_p=top_p)


@pytest.mark.parametrize("tokens", [1, 500, LIMIT])
def test_max_new_tokens_from_1_to_the_limit_is_accepted(tokens):
    assert validate(max_new_tokens=tokens)["max_new_tokens"] == tokens


@pytest.mark.parametrize("tokens", [0, -1, LIMIT + 1])
def test_max_new_tokens_outside_1_to_the_limit_is_refused_naming_the_limit(tokens):
    with pytest.raises(ParamError, match=rf"^max_new_tokens must be between 1 and {LIMIT}\.$"):
        validate(max_new_tokens=tokens)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("temperature", "0.5"),
        ("temperature", True),
        ("temperature", None),
        ("top_p", "1"),
        ("top_p", False),
        ("top_p", [0.5]),
        ("max_new_tokens", "lots"),
        ("max_new_tokens", "12"),
        ("max_new_tokens", 12.0),
        ("max_new_tokens", 1.5),
        ("max_new_tokens", True),
        ("seed", "7"),
        ("seed", 7.0),
        ("seed", True),
    ],
)
def test_numbers_must_be_numbers_and_never_strings_or_booleans(name, value):
    with pytest.raises(ParamError, match="must be numbers"):
        validate(**{name: value})


@pytest.mark.parametrize("seed", [None, 0, 7, -3, 2**70])
def test_a_seed_is_any_whole_number_or_none(seed):
    assert validate(seed=seed)["seed"] == seed


@pytest.mark.parametrize(
    ("stop", "expected"),
    [
        (None, []),
        ("", []),
        ([], []),
        ("\n\n", ["\n\n"]),
        (["a"] * MAX_STOP_STRINGS, ["a"] * MAX_STOP_STRINGS),
        (("x", "y"), ["x", "y"]),
        (["s" * MAX_STOP_LENGTH], ["s" * MAX_STOP_LENGTH]),
    ],
)
def test_stop_is_nothing_one_string_or_up_to_4_strings_stored_as_a_list(stop, expected):
    assert validate(stop=stop)["stop"] == expected


@pytest.mark.parametrize(
    "stop",
    [
        ["a"] * (MAX_STOP_STRINGS + 1),
        [""],
        ["ok", ""],
        ["s" * (MAX_STOP_LENGTH + 1)],
        "s" * (MAX_STOP_LENGTH + 1),
        [3],
        {"a": 1},
        0,
        False,
    ],
)
def test_stop_beyond_its_bounds_or_not_strings_is_refused(stop):
    with pytest.raises(ParamError, match=r"^stop takes up to 4 strings of 1–64 characters\.$"):
        validate(stop=stop)


def test_unknown_parameters_are_refused_by_name_in_order():
    with pytest.raises(ParamError, match=r"^Unknown parameters: beam_width, top_k\.$"):
        validate(top_k=40, beam_width=3, temperature=0.5)


@pytest.mark.parametrize("raw", [[("temperature", 0.5)], "temperature=0.5", 3])
def test_parameters_not_given_by_name_are_refused(raw):
    with pytest.raises(ParamError, match="by name"):
        params_validate(raw, max_new_tokens_limit=LIMIT)  # type: ignore[arg-type]


def test_a_param_error_is_a_value_error_for_callers_that_catch_those():
    assert issubclass(ParamError, ValueError)


# ---------------------------------------------------------------------------- SamplingParams


def test_sampling_params_default_to_greedy_with_no_stop_strings_or_seed():
    params = SamplingParams()
    assert params.greedy
    assert (params.top_p, params.stop, params.seed) == (1.0, (), None)


def test_sampling_params_take_one_stop_string_or_a_list_as_a_tuple():
    assert SamplingParams(stop="\n\n").stop == ("\n\n",)
    assert SamplingParams(stop=["a", "b"]).stop == ("a", "b")  # type: ignore[arg-type]


def test_sampling_params_with_any_budget_of_at_least_one_token_are_accepted():
    assert SamplingParams(max_new_tokens=1).max_new_tokens == 1
    assert SamplingParams(max_new_tokens=10**6).max_new_tokens == 10**6
    with pytest.raises(ParamError, match=r"^max_new_tokens must be at least 1\.$"):
        SamplingParams(max_new_tokens=0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"temperature": 2.5}, "between 0 and 2"),
        ({"temperature": -1.0}, "between 0 and 2"),
        ({"temperature": math.nan}, "between 0 and 2"),
        ({"top_p": 0.0}, "above 0"),
        ({"top_p": 1.5}, "above 0"),
        ({"max_new_tokens": True}, "must be numbers"),
        ({"max_new_tokens": 2.0}, "must be numbers"),
        ({"seed": "1"}, "must be numbers"),
        ({"stop": ("x",) * 5}, "up to 4 strings"),
        ({"stop": ("",)}, "1–64 characters"),
        ({"stop": (1,)}, "1–64 characters"),
    ],
)
def test_sampling_params_refuse_what_the_service_refuses(fields, message):
    with pytest.raises(ParamError, match=message):
        SamplingParams(**fields)
    with pytest.raises(ParamError, match=message):
        validate(**{name: list(v) if isinstance(v, tuple) else v for name, v in fields.items()})


def test_sampling_params_can_be_built_from_what_validation_stored():
    stored = validate(temperature=0.7, top_p=0.9, max_new_tokens=12, stop=["\n\n"], seed=5)
    params = SamplingParams(**{**stored, "stop": tuple(stored["stop"])})
    assert params == SamplingParams(
        temperature=0.7, top_p=0.9, max_new_tokens=12, stop=("\n\n",), seed=5
    )


def test_the_rules_and_the_remote_backend_load_without_torch_or_django():
    code = (
        "import sys, inference.params, inference.events, inference.remote\n"
        "loaded = {m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'django'}\n"
        "assert not loaded, loaded\n"
    )
    repo_root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120, cwd=repo_root)
