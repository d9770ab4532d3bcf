"""Session fixtures shared by the model tests: the tiny checkpoint, and it served over HTTP.

Defined once here and imported by ``tests/conftest.py``, so every folder shares one tiny
model and one ``transformers serve`` process per run.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-qwen3-moe"), seed=0)


@dataclass(frozen=True)
class ServedModel:
    """A `transformers serve` process serving the tiny model on loopback."""

    url: str  # base URL, e.g. http://127.0.0.1:41234
    model: str  # the model name the server answers to (its local path)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve_ready(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/health")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _stop_process_group(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def transformers_serve(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Run `transformers serve` on the tiny model, offline, on a free loopback port.

    Needs transformers' serving extra (fastapi, uvicorn, openai), which the dev extra installs;
    without it the tests that use this fixture fail.
    """
    missing = [name for name in ("fastapi", "uvicorn", "openai") if find_spec(name) is None]
    if missing:
        reason = (
            f"transformers serve needs {', '.join(missing)}: pip install 'transformers[serving]'"
        )
        # The dev extra installs it: missing means a broken setup, never a reason to skip.
        pytest.fail(reason)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",  # a tiny model only loses to thread contention
    }
    log_path = tmp_path_factory.mktemp("transformers-serve") / "serve.log"
    for _attempt in range(3):  # another process may take the free port before the server does
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        # `python -m transformers.cli.transformers` is the `transformers` console script.
        command = [
            sys.executable,
            "-m",
            "transformers.cli.transformers",
            "serve",
            str(tiny_model_dir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--device",
            "cpu",
        ]
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            deadline = time.monotonic() + 120
            while process.poll() is None and time.monotonic() < deadline:
                if _serve_ready(port):
                    yield ServedModel(url=url, model=str(tiny_model_dir))
                    return
                time.sleep(0.2)
        finally:
            _stop_process_group(process)
        if "address already in use" not in log_path.read_text(errors="replace").lower():
            break
    tail = log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"transformers serve did not become ready ({' '.join(command)}):\n{tail}")
