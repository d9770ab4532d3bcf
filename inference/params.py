"""Sampling parameters: their bounds, and the one place they are checked.

No torch, no Django: the job service checks what a client sends with `params_validate`, and
`SamplingParams` (what the engine and the remote backend take) runs the same per-field checks,
so a request the service accepts is one every backend accepts, and no layer has bounds of its
own. Every refusal is a `ParamError` whose message is a sentence a client can be shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypedDict, TypeGuard

TEMPERATURE_MAX = 2.0  # 0 is greedy decoding; hotter than 2 is noise
TOP_P_MAX = 1.0  # top_p lies in (0, TOP_P_MAX]
MAX_STOP_STRINGS = 4
MAX_STOP_LENGTH = 64  # characters in one stop string
PARAM_NAMES = frozenset({"temperature", "top_p", "max_new_tokens", "stop", "seed"})

DEFAULT_TEMPERATURE = 0.0
DEFAULT_TOP_P = 1.0
DEFAULT_MAX_NEW_TOKENS = 256  # when a caller of SamplingParams names none; the service has its own

NOT_NUMBERS = (
    "temperature, top_p, max_new_tokens and seed must be numbers "
    "(max_new_tokens and seed whole ones)."
)


class ParamError(ValueError):
    """A sampling parameter out of its bounds or of the wrong type; the message says which."""


class CleanParams(TypedDict):
    """Checked parameters with the defaults filled in, as a job stores them (JSON)."""

    temperature: float
    top_p: float
    max_new_tokens: int
    stop: list[str]
    seed: int | None


def _is_number(value: object) -> TypeGuard[float]:
    # bool is an int to Python, but True is not a temperature.
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def temperature_check(value: object) -> float:
    """``value`` as a temperature: a number from 0 (greedy) to `TEMPERATURE_MAX`."""
    if not _is_number(value):
        raise ParamError(NOT_NUMBERS)
    temperature = float(value)
    # NaN fails both comparisons, infinity the upper one.
    if not 0.0 <= temperature <= TEMPERATURE_MAX:
        raise ParamError(f"temperature must be between 0 and {TEMPERATURE_MAX:g}.")
    return temperature


def top_p_check(value: object) -> float:
    """``value`` as a nucleus: a number above 0 and at most `TOP_P_MAX`."""
    if not _is_number(value):
        raise ParamError(NOT_NUMBERS)
    top_p = float(value)
    if not 0.0 < top_p <= TOP_P_MAX:
        raise ParamError(f"top_p must be above 0 and at most {TOP_P_MAX:g}.")
    return top_p


def max_new_tokens_check(value: object, *, limit: int | None = None) -> int:
    """``value`` as a token budget: a whole number from 1 to ``limit`` (None: no upper bound)."""
    if not _is_whole(value):
        raise ParamError(NOT_NUMBERS)
    if limit is None and value < 1:
        raise ParamError("max_new_tokens must be at least 1.")
    if limit is not None and not 1 <= value <= limit:
        raise ParamError(f"max_new_tokens must be between 1 and {limit}.")
    return value


def stop_check(value: object) -> tuple[str, ...]:
    """``value`` as stop strings: one string or a list of up to `MAX_STOP_STRINGS`, each of 1 to
    `MAX_STOP_LENGTH` characters. Nothing (None, "", []) means none."""
    if value is None or value == "":
        return ()
    strings = (value,) if isinstance(value, str) else value
    if (
        not isinstance(strings, list | tuple)
        or len(strings) > MAX_STOP_STRINGS
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_LENGTH for s in strings)
    ):
        raise ParamError(
            f"stop takes up to {MAX_STOP_STRINGS} strings of 1–{MAX_STOP_LENGTH} characters."
        )
    return tuple(strings)


def seed_check(value: object) -> int | None:
    """``value`` as a seed: a whole number, or None for a fresh random one per request."""
    if value is None:
        return None
    if not _is_whole(value):
        raise ParamError(NOT_NUMBERS)
    return value


def params_validate(raw: Mapping[str, object] | None, *, max_new_tokens_limit: int) -> CleanParams:
    """Check parameters a client sent (None: all defaults) and fill in the defaults.

    ``max_new_tokens_limit`` is both the upper bound and the default of ``max_new_tokens``.
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ParamError("Parameters must be given by name (an object), not as a list or value.")
    unknown = set(raw) - PARAM_NAMES
    if unknown:
        raise ParamError(f"Unknown parameters: {', '.join(sorted(map(str, unknown)))}.")
    return {
        "temperature": temperature_check(raw.get("temperature", DEFAULT_TEMPERATURE)),
        "top_p": top_p_check(raw.get("top_p", DEFAULT_TOP_P)),
        "max_new_tokens": max_new_tokens_check(
            raw.get("max_new_tokens", max_new_tokens_limit), limit=max_new_tokens_limit
        ),
        "stop": list(stop_check(raw.get("stop"))),
        "seed": seed_check(raw.get("seed")),
    }


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples. ``temperature=0`` means greedy decoding (the default).

    Checked on creation by the same rules as `params_validate` (`ParamError` otherwise); the
    only bound it does not know is the deployment's ``max_new_tokens`` limit.
    """

    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = DEFAULT_TOP_P
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None

    def __post_init__(self) -> None:
        # Frozen: the checked (normalised) values are set past the dataclass's guard.
        checked = {
            "temperature": temperature_check(self.temperature),
            "top_p": top_p_check(self.top_p),
            "max_new_tokens": max_new_tokens_check(self.max_new_tokens),
            "stop": stop_check(self.stop),
            "seed": seed_check(self.seed),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0
