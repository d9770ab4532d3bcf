"""Builds the worker's backend from settings (the local 8-bit engine, or a remote server),
and knows the served model's context window.

This module and the worker are where Django code runs ``inference`` (the job service only
checks parameters with ``inference.params``; two commands build and load models).

The window of a remote model comes from its server (``max_model_len`` in ``GET /v1/models``)
unless ``QWEB_CONTEXT_TOKENS`` says otherwise, and never from ``QWEB_MODEL_DIR`` (the demo
model's 2,048 tokens). Every process needs it (web processes size prompts, the worker checks
it at start), so the answer is kept in the shared cache: all processes together ask the server
about once per ``WINDOW_FRESH_S``, never once per request, and a server that cannot be asked
for a while leaves the last known window in use.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from inference.events import Prompt, StreamingBackend
from inference.remote import RemoteBackend, RemoteError, served_context_window

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 32_768  # a local model directory whose config names no window
WINDOW_FRESH_S = 600  # a server restarted with another window is seen within this
WINDOW_RETRY_S = 30  # after a failed lookup no process asks again sooner
WINDOW_LOOKUP_TIMEOUT_S = 5.0


class BackendError(Exception):
    """The configured model or server cannot be used; the message says why."""


class WindowUnknown(BackendError):
    """The remote model's context window is not known: the server does not say, or cannot be
    asked, and ``QWEB_CONTEXT_TOKENS`` is not set."""


# Builds the prompt for a job's messages, continuing ``prefix`` when a retried job resumes.
PromptBuilder = Callable[[list[dict[str, str]], str], Prompt]


@dataclass
class Backend:
    engine: StreamingBackend  # the local Engine or a RemoteBackend
    model_name: str
    device: str
    prompt_builder: PromptBuilder
    context_window: int | None = None  # tokens, prompt and answer; None: the engine's own

    def shutdown(self) -> None:
        self.engine.shutdown()


def _device() -> str:
    if settings.QWEB_DEVICE != "auto":
        return settings.QWEB_DEVICE
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def local_backend() -> Backend:
    """Load ``QWEB_MODEL_DIR`` once (int8 experts unless QWEB_QUANTIZE=none) into an engine."""
    from transformers import AutoTokenizer

    from inference.engine import Engine
    from inference.loader import ModelLoadError, load_model

    directory = settings.QWEB_MODEL_DIR
    device = _device()
    try:
        model = load_model(directory, quantize=settings.QWEB_QUANTIZE, device=device)
        tokenizer = AutoTokenizer.from_pretrained(str(directory))
    except ModelLoadError as error:
        raise BackendError(str(error)) from None
    except OSError as error:
        raise BackendError(f"The tokenizer in {directory} cannot be loaded: {error}") from None
    engine = Engine(
        model,
        tokenizer,
        kv_cache_bytes=settings.QWEB_KV_CACHE_MB * 1024 * 1024 or None,
        context_window=settings.QWEB_CONTEXT_WINDOW or None,
    )

    def prompt_builder(messages: list[dict[str, str]], prefix: str) -> Prompt:
        if not prefix:
            return messages
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text + prefix

    name = directory.name
    if getattr(model.config, "qweb_demo_model", False):
        name = f"{name} (demo model)"
    return Backend(engine=engine, model_name=name, device=device, prompt_builder=prompt_builder)


def backend_from_settings() -> Backend:
    if settings.QWEB_INFERENCE_BACKEND == "remote":
        return remote_backend()
    return local_backend()


def remote_backend() -> Backend:
    """Relay to an OpenAI-compatible server (vLLM, SGLang, transformers serve).

    Asks the server for the model's window first, which also refreshes it for the web
    processes, and refuses (`WindowUnknown`) when it is not known: a deployment that cannot size
    its prompts stops at start with the reason, not in every chat turn.
    """

    window = remote_window(fresh=True)
    if settings.QWEB_CONTEXT_TOKENS:
        _warn_if_over_served_window(settings.QWEB_CONTEXT_TOKENS)
    engine = RemoteBackend(
        settings.QWEB_REMOTE_URL,
        model=settings.QWEB_REMOTE_MODEL,
        api_key=settings.QWEB_REMOTE_API_KEY,
        max_concurrent=settings.QWEB_WORKER_MAX_JOBS,
    )

    def prompt_builder(messages: list[dict[str, str]], prefix: str) -> Prompt:
        return messages if not prefix else [*messages, {"role": "assistant", "content": prefix}]

    return Backend(
        engine=engine,
        model_name=settings.QWEB_REMOTE_MODEL,
        device=f"remote {settings.QWEB_REMOTE_URL}",
        prompt_builder=prompt_builder,
        context_window=window,
    )


# ---------------------------------------------------------------------------- the window


def context_window() -> int:
    """Tokens the served model takes in one request, prompt and answer.

    ``QWEB_CONTEXT_TOKENS`` when set; else, locally, ``QWEB_CONTEXT_WINDOW`` or the model's
    config, and for a remote server what the server reports (`remote_window`, which raises
    `WindowUnknown` when it cannot be known).
    """
    if settings.QWEB_INFERENCE_BACKEND == "remote":
        return remote_window()
    if settings.QWEB_CONTEXT_TOKENS:
        return settings.QWEB_CONTEXT_TOKENS
    if settings.QWEB_CONTEXT_WINDOW:
        return settings.QWEB_CONTEXT_WINDOW
    return _config_window(str(settings.QWEB_MODEL_DIR))


@functools.cache
def _config_window(model_dir: str) -> int:
    try:
        with (Path(model_dir) / "config.json").open(encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return DEFAULT_WINDOW
    window = config.get("max_position_embeddings") or config.get("text_config", {}).get(
        "max_position_embeddings"
    )
    return int(window) if isinstance(window, int) and window > 0 else DEFAULT_WINDOW


def _window_key() -> str:
    served = f"{settings.QWEB_REMOTE_URL}\n{settings.QWEB_REMOTE_MODEL}".encode()
    return f"generation:remote-window:{hashlib.sha256(served).hexdigest()[:24]}"


def remote_window(*, fresh: bool = False) -> int:
    """The remote model's window: ``QWEB_CONTEXT_TOKENS``, else what its server reports.

    Read from the shared cache while fresh; ``fresh=True`` (a worker starting) asks the server
    regardless. A server that cannot be asked leaves the last known window in use; with none
    known, or a server that reports none, raises `WindowUnknown` naming the variables.
    """
    if settings.QWEB_CONTEXT_TOKENS:
        return settings.QWEB_CONTEXT_TOKENS

    key = _window_key()
    known = cache.get(key) or {}
    now = time.time()
    if not fresh and known.get("until", 0) > now:
        if known.get("window"):
            return int(known["window"])
        raise WindowUnknown(known.get("error") or "The model's context window is unknown.")
    try:
        window = _ask_server()
    except RemoteError as error:
        if known.get("window"):
            logger.warning("Keeping the window of %s: %s", settings.QWEB_REMOTE_MODEL, error)
            cache.set(key, {"window": known["window"], "until": now + WINDOW_RETRY_S}, None)
            return int(known["window"])
        message = (
            f"The context window of QWEB_REMOTE_MODEL={settings.QWEB_REMOTE_MODEL!r} is unknown: "
            f"{error}. Start the server (QWEB_REMOTE_URL) first, or set QWEB_CONTEXT_TOKENS to "
            "the model's window (prompt and answer, in tokens)."
        )
        cache.set(key, {"error": message, "until": now + WINDOW_RETRY_S}, None)
        raise WindowUnknown(message) from None
    if window is None:
        message = (
            f"QWEB_REMOTE_URL={settings.QWEB_REMOTE_URL} reports no context window for "
            f"QWEB_REMOTE_MODEL={settings.QWEB_REMOTE_MODEL!r} (no max_model_len in GET "
            "/v1/models: vLLM and SGLang send it, transformers serve does not). Set "
            "QWEB_CONTEXT_TOKENS to the model's window (prompt and answer, in tokens)."
        )
        cache.set(key, {"error": message, "until": now + WINDOW_RETRY_S}, None)
        raise WindowUnknown(message)
    cache.set(key, {"window": window, "until": now + WINDOW_FRESH_S}, None)
    return window


def _ask_server() -> int | None:
    """The window the remote server reports for QWEB_REMOTE_MODEL (RemoteError if it can't)."""

    return served_context_window(
        settings.QWEB_REMOTE_URL,
        model=settings.QWEB_REMOTE_MODEL,
        api_key=settings.QWEB_REMOTE_API_KEY,
        timeout_s=WINDOW_LOOKUP_TIMEOUT_S,
    )


def _warn_if_over_served_window(tokens: int) -> None:

    try:
        served = _ask_server()
    except RemoteError as error:
        logger.info("Cannot compare QWEB_CONTEXT_TOKENS with the server's window: %s", error)
        return
    if served is not None and tokens > served:
        logger.warning(
            "QWEB_CONTEXT_TOKENS=%d is more than the %d tokens %s serves %s with: long prompts "
            "will be refused by the server.",
            tokens,
            served,
            settings.QWEB_REMOTE_URL,
            settings.QWEB_REMOTE_MODEL,
        )


def context_window_check() -> None:
    """Refuse to start a web process that could not size prompts for the remote model."""
    if settings.QWEB_INFERENCE_BACKEND != "remote":
        return
    try:
        remote_window()
    except WindowUnknown as error:
        raise ImproperlyConfigured(str(error)) from None


def model_label() -> str:
    """The served model and its window for the page header: "Qwen3-Coder-480B-A35B-Instruct ·
    262,144-token window"."""
    if settings.QWEB_INFERENCE_BACKEND == "remote":
        name = settings.QWEB_REMOTE_MODEL.rstrip("/").rsplit("/", 1)[-1]
    else:
        name = settings.QWEB_MODEL_DIR.name
    try:
        return f"{name} · {context_window():,}-token window"
    except WindowUnknown:
        return f"{name} · window unknown"
