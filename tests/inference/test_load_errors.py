from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from inference.loader import ModelLoadError, load_model


def _remove(name: str) -> Callable[[Path], None]:
    return lambda directory: (directory / name).unlink()


def _write(name: str, text: str | bytes) -> Callable[[Path], None]:
    def write(directory: Path) -> None:
        path = directory / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)

    return write


def _shard_index(directory: Path) -> None:
    (directory / "model.safetensors").unlink()
    index = {"metadata": {}, "weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        pytest.param(lambda d: shutil.rmtree(d), "does not exist", id="missing-directory"),
        pytest.param(_remove("config.json"), "no config.json", id="missing-config"),
        pytest.param(_write("config.json", "{not json"), "not valid JSON", id="bad-json"),
        pytest.param(_write("config.json", "[1, 2]"), "no model_type", id="json-not-a-config"),
        pytest.param(
            _write("config.json", '{"model_type": "qweb-unknown"}'),
            "unsupported architecture",
            id="unknown-architecture",
        ),
        pytest.param(
            _write("config.json", '{"model_type": "resnet"}'),
            "not a causal LM",
            id="not-a-causal-lm",
        ),
        pytest.param(_remove("model.safetensors"), "no model.safetensors", id="missing-weights"),
        pytest.param(_shard_index, "missing shard", id="missing-shard"),
        pytest.param(
            _write("model.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00garbage!"),
            "cannot load weights",
            id="corrupt-weights",
        ),
    ],
)
def test_malformed_model_directory_raises_a_one_line_reason(
    tiny_model_dir, tmp_path, breakage, reason
):
    directory = tmp_path / "model"
    shutil.copytree(tiny_model_dir, directory)
    breakage(directory)
    with pytest.raises(ModelLoadError) as raised:
        load_model(directory, quantize="int8")
    message = str(raised.value)
    assert reason in message
    assert "\n" not in message


def test_unknown_quantization_is_rejected(tiny_model_dir):
    with pytest.raises(ValueError, match="quantize"):
        load_model(tiny_model_dir, quantize="int4")
