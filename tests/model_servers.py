"""A real HTTP server on loopback that lists models the way vLLM and SGLang do.

``transformers serve`` (the real server of the remote-backend tests) lists its model without a
context window; vLLM and SGLang put ``max_model_len`` on each entry of ``GET /v1/models``. This
server answers with either shape, over real sockets, and records what it was asked. No Django,
so the Django-free suites use it too (``remote_server`` points Django's settings at one).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

QWEN_480B = "Qwen/Qwen3-Coder-480B-A35B-Instruct"


def vllm_models(model: str, window: int | None) -> dict[str, Any]:
    """``GET /v1/models`` as vLLM answers it (``vllm/entrypoints/openai/protocol.py``,
    ``ModelCard``), with a LoRA adapter listed after the base model, as vLLM lists them."""
    card = {
        "id": model,
        "object": "model",
        "created": 1_760_000_000,
        "owned_by": "vllm",
        "root": model,
        "parent": None,
        "max_model_len": window,
        "permission": [{"id": "modelperm-1", "object": "model_permission", "allow_view": True}],
    }
    adapter = {**card, "id": "sql-lora", "parent": model, "max_model_len": None}
    return {"object": "list", "data": [card, adapter]}


def sglang_models(model: str, window: int | None) -> dict[str, Any]:
    """``GET /v1/models`` as SGLang answers it (``max_model_len`` is its ``context_len``)."""
    card = {
        "id": model,
        "object": "model",
        "created": 1_760_000_000,
        "owned_by": "sglang",
        "root": model,
        "parent": None,
        "max_model_len": window,
    }
    return {"object": "list", "data": [card]}


def unsized_models(model: str) -> dict[str, Any]:
    """A model list without windows, as ``transformers serve`` and plain proxies send."""
    card = {"id": model, "object": "model", "created": 0, "owned_by": "local"}
    return {"object": "list", "data": [card]}


class LoopbackServer:
    """A threaded HTTP server on a free loopback port answering with ``handler``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class ModelListServer(LoopbackServer):
    """Answers ``GET /v1/models`` with ``body`` (JSON) and ``status``; both may be changed."""

    def __init__(self, body: dict[str, Any], status: int = 200) -> None:
        self.body: dict[str, Any] | bytes = body
        self.status = status
        self.requests: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append((self.path, dict(self.headers)))
                if self.path != "/v1/models":
                    self.send_error(404)
                    return
                payload = (
                    server.body
                    if isinstance(server.body, bytes)
                    else json.dumps(server.body).encode()
                )
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        super().__init__(Handler)

    @property
    def asked(self) -> int:
        return len(self.requests)


@pytest.fixture
def model_list_server() -> Iterator[Any]:
    """Start ``ModelListServer``s: ``model_list_server(vllm_models(name, 262_144))``."""
    servers: list[ModelListServer] = []

    def start(body: dict[str, Any], status: int = 200) -> ModelListServer:
        servers.append(ModelListServer(body, status))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def remote_server(settings, tiny_model_dir, model_list_server):
    """Configure the remote backend in front of a model list (``remote_server(body)``, which
    returns the server). QWEB_MODEL_DIR stays the demo model, a 2,048-token window, as in a
    deployment that never set it."""

    def configure(body: dict[str, Any], status: int = 200) -> ModelListServer:
        server = model_list_server(body, status)
        settings.QWEB_INFERENCE_BACKEND = "remote"
        settings.QWEB_REMOTE_URL = server.url
        settings.QWEB_REMOTE_MODEL = QWEN_480B
        settings.QWEB_REMOTE_API_KEY = None
        settings.QWEB_REMOTE_TOKENIZER_DIR = None
        settings.QWEB_CONTEXT_TOKENS = 0
        settings.QWEB_CONTEXT_WINDOW = 0
        settings.QWEB_MODEL_DIR = tiny_model_dir
        return server

    return configure
