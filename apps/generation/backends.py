"""Builds the worker's backend from settings: the local 8-bit engine, or a remote server.

This module and the worker are the only places Django code reaches into ``inference``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings


class BackendError(Exception):
    """The configured model or server cannot be used; the message says why."""


@dataclass
class Backend:
    engine: Any
    model_name: str
    device: str
    # Builds the prompt for a job, continuing ``prefix`` when a retried job resumes.
    prompt_builder: Callable[[list[dict[str, str]], str], Any]

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

    def prompt_builder(messages: list[dict[str, str]], prefix: str) -> Any:
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
    """Relay to an OpenAI-compatible server (vLLM, SGLang, transformers serve)."""
    from inference.remote import RemoteBackend

    engine = RemoteBackend(
        settings.QWEB_REMOTE_URL,
        model=settings.QWEB_REMOTE_MODEL,
        api_key=settings.QWEB_REMOTE_API_KEY,
        max_concurrent=settings.QWEB_WORKER_MAX_JOBS,
    )

    def prompt_builder(messages: list[dict[str, str]], prefix: str) -> Any:
        return messages if not prefix else [*messages, {"role": "assistant", "content": prefix}]

    return Backend(
        engine=engine,
        model_name=settings.QWEB_REMOTE_MODEL,
        device=f"remote {settings.QWEB_REMOTE_URL}",
        prompt_builder=prompt_builder,
    )
