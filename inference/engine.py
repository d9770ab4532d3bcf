"""One engine, many concurrent requests: transformers' continuous batching behind a small API.

Threads:

- transformers' ``ContinuousBatchingManager`` generation thread runs the model: it schedules every
  live request into each forward pass (prefill and decode mixed) and streams cumulative token
  lists out.
- the engine's pump thread turns those into `TokenDelta` events: incremental detokenization that
  never splits a character, stop strings, finish reasons, sequence numbers.
- callers (the worker) use `submit`, `cancel`, `poll` and `shutdown` from any thread.

Per request: sampling (temperature, top_p, seed; see ``inference.sampling`` for what had to be
added on top of transformers), ``max_new_tokens`` and stop strings. A request that cannot be served
(prompt too long for the context window or for the KV cache, empty prompt, engine stopped) gets one
error event; other requests are unaffected.

KV memory is bounded by ``kv_cache_bytes`` (converted to the manager's ``num_blocks``; the bound
covers the whole cache tensor, the manager's two padding blocks included) or by ``memory_fraction``
of the free accelerator memory (the manager's ``max_memory_percent``). When the live requests need
more blocks than that, the manager preempts the newest and re-prefills it later; a single request
that could never fit is refused up front. Without flash attention (sdpa/eager, e.g. on CPU) the
manager also keeps a ``max_batch_tokens x (cache tokens + max_batch_tokens)`` attention mask outside
that bound, which is why ``max_batch_tokens`` defaults lower here than in transformers.

The engine owns the model while it runs: the manager may switch its attention implementation (it
restores it on shutdown), so do not call ``model.generate`` or start a second engine on the same
model meanwhile.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from inference.detok import IncrementalDetokenizer, StopStringMatcher
from inference.events import EngineError, FinishReason, Prompt, StreamingBackend, TokenDelta
from inference.params import SamplingParams
from inference.sampling import per_request_processors, processor_kwargs

logger = logging.getLogger(__name__)


DEFAULT_PAGE_SIZE = 256  # tokens per KV block (transformers' default page size)
DEFAULT_CPU_KV_CACHE_BYTES = 256 * 1024**2  # on CPU the cache would otherwise take 60% of RAM
DEFAULT_MEMORY_FRACTION = 0.8  # of free accelerator memory, when no byte bound is given
# Tokens per forward pass (long prompts are prefilled in chunks of this size). Without flash
# attention the manager also allocates a [max_batch_tokens, cache tokens] attention mask, so this
# stays well below transformers' 8192.
DEFAULT_MAX_BATCH_TOKENS = 2048
DEFAULT_CPU_MAX_BATCH_TOKENS = 512
_POLL_INTERVAL = 0.05
_TRASH_BLOCKS = 2


@dataclass(frozen=True)
class EngineInfo:
    """What the engine was sized to; for the worker's heartbeat and the admin console."""

    context_window: int
    max_request_tokens: int  # longest prompt + max_new_tokens one request can hold in the cache
    kv_cache_bytes: int
    num_blocks: int
    page_size: int
    max_batch_tokens: int
    device: str


class _Request:
    __slots__ = (
        "consumed",
        "detok",
        "done",
        "internal_id",
        "params",
        "pending_ids",
        "prompt_tokens",
        "request_id",
        "seq",
        "stops",
    )

    def __init__(self, request_id: str, internal_id: str, params: SamplingParams, tokenizer):
        self.request_id = request_id
        self.internal_id = internal_id
        self.params = params
        self.prompt_tokens = 0
        self.detok = IncrementalDetokenizer(tokenizer)
        self.stops = StopStringMatcher(params.stop)
        self.seq = 0
        self.consumed = 0  # generated tokens already taken from the manager's cumulative output
        self.pending_ids: list[int] = []  # ids not yet reported in an event
        self.done = False


def _one_line(error: BaseException | str) -> str:
    text = " ".join(str(error).split())
    return text[:300] or type(error).__name__


class Engine(StreamingBackend):
    """Serve many concurrent generation requests from one model with continuous batching.

    ``Engine(model, tokenizer, kv_cache_bytes=2 * 1024**3)`` starts the generation thread; use it
    as a context manager or call `shutdown`. A request id may be reused once its request finished.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        kv_cache_bytes: int | None = None,
        memory_fraction: float | None = None,
        max_batch_tokens: int | None = None,
        context_window: int | None = None,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_requests_per_batch: int | None = None,
    ) -> None:
        if kv_cache_bytes is not None and memory_fraction is not None:
            raise ValueError("give kv_cache_bytes or memory_fraction, not both")
        if memory_fraction is not None and not 0.0 < memory_fraction <= 1.0:
            raise ValueError(f"memory_fraction must be in (0, 1], not {memory_fraction}")
        self._model = model
        self._tokenizer = tokenizer
        self._eos_ids = self._eos_token_ids(model, tokenizer)
        config = model.config.get_text_config()

        self._bytes_per_block = self.kv_bytes_per_block(config, model.dtype, page_size)
        num_blocks = self._num_blocks(model, kv_cache_bytes, memory_fraction, page_size)
        self._manager = self._warm_manager(
            model,
            page_size=page_size,
            num_blocks=num_blocks,
            max_batch_tokens=max_batch_tokens,
            memory_fraction=memory_fraction,
            max_requests_per_batch=max_requests_per_batch,
        )
        cache = self._manager.batch_processor.cache
        self._context_window = int(context_window or config.max_position_embeddings)
        self._info = EngineInfo(
            context_window=self._context_window,
            max_request_tokens=self._max_request_tokens(cache, page_size),
            kv_cache_bytes=int(cache.cache_tensor.numel() * cache.cache_tensor.element_size()),
            num_blocks=int(cache.num_blocks),
            page_size=page_size,
            max_batch_tokens=int(cache.max_batch_tokens),
            device=str(model.device),
        )

        super().__init__()
        self._by_internal: dict[str, _Request] = {}
        self._ids = itertools.count(1)
        self._manager.start()
        self._pump_stop = threading.Event()
        self._pump = threading.Thread(target=self._pump_loop, name="qweb-engine-pump", daemon=True)
        self._pump.start()

    def _num_blocks(
        self,
        model: Any,
        kv_cache_bytes: int | None,
        memory_fraction: float | None,
        page_size: int,
    ) -> int | None:
        """KV blocks for a cache of ``kv_cache_bytes``; None to size it by memory fraction."""
        if kv_cache_bytes is None and memory_fraction is None and model.device.type == "cpu":
            kv_cache_bytes = DEFAULT_CPU_KV_CACHE_BYTES
        if kv_cache_bytes is None:
            return None
        # The manager's cache tensor also holds two never-used "trash" blocks for padding.
        num_blocks = kv_cache_bytes // self._bytes_per_block - _TRASH_BLOCKS
        if num_blocks < 1:
            raise ValueError(
                f"kv_cache_bytes={kv_cache_bytes} is less than {1 + _TRASH_BLOCKS} KV blocks "
                f"({self._bytes_per_block} bytes each, {page_size} tokens)"
            )
        return num_blocks

    def _warm_manager(
        self,
        model: Any,
        *,
        page_size: int,
        num_blocks: int | None,
        max_batch_tokens: int | None,
        memory_fraction: float | None,
        max_requests_per_batch: int | None,
    ) -> Any:
        """The model's continuous-batching manager, configured and warmed up (not started)."""
        from transformers.generation import ContinuousBatchingConfig, GenerationConfig

        if max_batch_tokens is None:
            max_batch_tokens = (
                DEFAULT_CPU_MAX_BATCH_TOKENS
                if model.device.type == "cpu"
                else DEFAULT_MAX_BATCH_TOKENS
            )
        cb_config = ContinuousBatchingConfig(
            page_size=page_size,
            num_blocks=num_blocks,
            max_batch_tokens=max_batch_tokens,
            max_memory_percent=(
                None if num_blocks is not None else (memory_fraction or DEFAULT_MEMORY_FRACTION)
            ),
            max_requests_per_batch=max_requests_per_batch,
            # Our processors pick the token; the manager's argmax only reads it back.
            per_request_processors=False,
            cpu_offload_space=0.0,
        )
        generation_config = GenerationConfig(
            do_sample=False,
            eos_token_id=sorted(self._eos_ids) or -1,
            pad_token_id=getattr(model.generation_config, "pad_token_id", None),
            max_new_tokens=256,
        )
        manager = model.init_continuous_batching(
            generation_config=generation_config, continuous_batching_config=cb_config
        )
        # Installed before the batch processor exists, so the model runner uses these.
        manager.logit_processor = per_request_processors()
        # warmup() builds the batch processor (and the paged cache) here, so the cache geometry is
        # known before any request; on accelerators it also captures CUDA graphs.
        try:
            manager.warmup()
        except Exception:
            # Typically a MemoryError for a cache that does not fit: leave the model as it was.
            original = getattr(manager, "_original_attn_impl", None)
            if original is not None:
                model.set_attn_implementation(original)
            raise
        return manager

    # ------------------------------------------------------------------ sizing helpers

    @staticmethod
    def kv_bytes_per_block(config: Any, dtype: torch.dtype, page_size: int) -> int:
        """Bytes of KV cache for ``page_size`` tokens across every layer (keys and values)."""
        heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
        head_dim = getattr(config, "head_dim", None) or (
            config.hidden_size // config.num_attention_heads
        )
        itemsize = torch.empty((), dtype=dtype).element_size()
        return config.num_hidden_layers * 2 * heads * head_dim * itemsize * page_size

    @staticmethod
    def _max_request_tokens(cache: Any, page_size: int) -> int:
        try:
            from transformers.generation.continuous_batching.model_runner import (
                infer_max_single_request_tokens,
            )

            return int(infer_max_single_request_tokens(cache))
        except ImportError:  # moved in a later transformers: fall back to whole blocks
            return int(cache.num_blocks) * page_size

    @staticmethod
    def _eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
        eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
        if eos is None:
            eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            return set()
        return {int(i) for i in ([eos] if isinstance(eos, int) else eos) if int(i) >= 0}

    @property
    def info(self) -> EngineInfo:
        return self._info

    # ------------------------------------------------------------------ public API

    def submit(self, request_id: str, prompt: Prompt, params: SamplingParams | None = None) -> None:
        """Queue a request. Its events (deltas, then one finished event) arrive through `poll`.

        ``prompt`` is token ids, raw text, or chat messages (``[{"role": ..., "content": ...}]``,
        rendered with the tokenizer's chat template and the assistant header). A prompt that cannot
        be served yields a single error event rather than an exception; a request id that is still
        live, or an engine that was shut down, raises.
        """
        params = params or SamplingParams()
        if not isinstance(request_id, str) or not request_id:
            raise ValueError("request_id must be a non-empty string")
        # Tokenize outside the lock: a long chat template must not stall the event pump.
        prompt_ids: list[int] = []
        try:
            prompt_ids = self._prompt_ids(prompt)
            problem = self._check_length(len(prompt_ids), params.max_new_tokens)
        except Exception as error:  # a broken template or odd input is this request's problem
            problem = f"cannot tokenize the prompt: {_one_line(error)}"
        with self._lock:
            if self._closing:
                raise EngineError("the engine is shut down")
            if request_id in self._live:
                raise ValueError(f"request {request_id!r} is still running")
            internal_id = f"{request_id}#{next(self._ids)}"
            request = _Request(request_id, internal_id, params, self._tokenizer)
            request.prompt_tokens = len(prompt_ids)
            self._live[request_id] = request
            self._by_internal[internal_id] = request
            problem = problem or self._manager_problem()
            if problem is not None:
                self._finish(request, FinishReason.ERROR, problem)
                return
            accepted = self._manager.add_request(
                prompt_ids,
                request_id=internal_id,
                max_new_tokens=params.max_new_tokens,
                streaming=True,
                eos_token_id=sorted(self._eos_ids) or -1,
                **processor_kwargs(params),
            )
            if accepted is None:
                self._finish(
                    request, FinishReason.ERROR, "the generation loop is not accepting requests"
                )

    def cancel(self, request_id: str) -> bool:
        """Stop a request now and free its KV cache; emits its final "cancelled" event.

        Returns False if the request is unknown or already finished.
        """
        with self._lock:
            request = self._live.get(request_id)
            if request is None:
                return False
            self._manager.cancel_request(request.internal_id)
            self._finish(request, FinishReason.CANCELLED)
            return True

    def stats(self) -> dict[str, Any]:
        """Live counts, read without stopping the generation thread (so approximate)."""
        processor = self._manager.batch_processor
        scheduler = getattr(processor, "scheduler", None)
        cache = getattr(processor, "cache", None)
        return {
            "live": len(self._live),
            "active": len(scheduler.active_requests) if scheduler else 0,
            "waiting": len(scheduler.waiting_requests) if scheduler else 0,
            "kv_free_fraction": float(cache.compute_free_capacity()) if cache else 0.0,
        }

    def is_running(self) -> bool:
        return not self._closing and self._manager.is_running()

    def shutdown(self, *, drain: bool = False, timeout: float = 30.0) -> None:
        """Stop the engine and its threads. Idempotent.

        With ``drain=True`` live requests may finish first (up to ``timeout`` seconds); the rest are
        cancelled and get their "cancelled" event.
        """
        deadline = self._begin_shutdown(wait_for_live=drain, timeout=timeout)
        if deadline is None:
            return
        with self._lock:
            for request in list(self._live.values()):
                self._manager.cancel_request(request.internal_id)
                self._finish(request, FinishReason.CANCELLED)
        try:
            self._manager.stop(
                block=True, timeout=max(1.0, deadline - time.monotonic()), hard_stop=True
            )
            self._manager.destroy()
        finally:
            self._pump_stop.set()
            self._pump.join(timeout=max(1.0, deadline - time.monotonic()))
            with self._lock:
                self._closed = True

    # ------------------------------------------------------------------ internals

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            return list(self._tokenizer(prompt, add_special_tokens=False)["input_ids"])
        items = list(prompt)
        if items and all(isinstance(item, Mapping) for item in items):
            text = self._tokenizer.apply_chat_template(
                items, tokenize=False, add_generation_prompt=True
            )
            return list(self._tokenizer(text, add_special_tokens=False)["input_ids"])
        if all(isinstance(item, int) and not isinstance(item, bool) for item in items):
            vocab = len(self._tokenizer)
            bad = next((i for i in items if not 0 <= i < vocab), None)
            if bad is not None:
                raise ValueError(f"token id {bad} is outside the vocabulary (size {vocab})")
            return items
        raise TypeError("prompt must be token ids, text, or a list of chat messages")

    def _check_length(self, prompt_tokens: int, max_new_tokens: int) -> str | None:
        if prompt_tokens == 0:
            return "the prompt is empty"
        total = prompt_tokens + max_new_tokens
        if total > self._context_window:
            return (
                f"prompt of {prompt_tokens} tokens plus max_new_tokens={max_new_tokens} exceeds "
                f"the context window of {self._context_window} tokens"
            )
        if total > self._info.max_request_tokens:
            return (
                f"prompt of {prompt_tokens} tokens plus max_new_tokens={max_new_tokens} exceeds "
                f"the KV cache, which holds {self._info.max_request_tokens} tokens per request"
            )
        return None

    def _manager_problem(self) -> str | None:
        fatal = self._manager.background_thread_status.fatal_error
        if fatal is not None:
            return f"the generation loop died: {_one_line(fatal)}"
        if not self._manager.is_running():
            return "the generation loop is not running"
        return None

    def _emit(self, request: _Request, text: str, **final: Any) -> None:
        request.seq += 1
        ids, request.pending_ids = tuple(request.pending_ids), []
        self._events.put(TokenDelta(request.request_id, request.seq, text, ids, **final))

    def _finish(
        self, request: _Request, reason: FinishReason, error: str | None = None, text: str = ""
    ) -> None:
        """Emit the last event and forget the request. Call with the lock held."""
        request.done = True
        self._live.pop(request.request_id, None)
        self._by_internal.pop(request.internal_id, None)
        self._emit(
            request,
            text,
            finished=True,
            finish_reason=reason,
            error=error,
            prompt_tokens=request.prompt_tokens,
            completion_tokens=request.consumed,
        )

    def _pump_loop(self) -> None:
        manager = self._manager
        while not self._pump_stop.is_set():
            try:
                output = manager.get_result(timeout=_POLL_INTERVAL)
            except Exception:  # never let the pump die: events are the only way out
                logger.exception("engine pump failed to read an output")
                output = None
            if output is None:
                if manager.background_thread_status.fatal_error is not None or (
                    not manager.is_running() and not self._closing
                ):
                    self._fail_all(self._manager_problem() or "the generation loop stopped")
                time.sleep(_POLL_INTERVAL if not manager.is_running() else 0)
                continue
            try:
                with self._lock:
                    self._on_output(output)
            except Exception as error:
                logger.exception("engine pump failed on an output")
                with self._lock:
                    request = self._by_internal.get(output.request_id)
                    if request is not None:
                        manager.cancel_request(request.internal_id)
                        self._finish(
                            request, FinishReason.ERROR, f"internal error: {_one_line(error)}"
                        )

    def _fail_all(self, message: str) -> None:
        with self._lock:
            for request in list(self._live.values()):
                self._finish(request, FinishReason.ERROR, message)

    def _on_output(self, output: Any) -> None:
        request = self._by_internal.get(output.request_id)
        if request is None or request.done:
            return  # cancelled, stopped on a stop string, or from a previous request with this id
        tokens = output.generated_tokens
        new_ids = tokens[request.consumed :]
        request.consumed = len(tokens)
        request.pending_ids.extend(new_ids)
        if output.error is not None:
            self._finish(
                request, FinishReason.ERROR, f"generation failed: {_one_line(output.error)}"
            )
            return
        finished = output.is_finished()
        text = request.detok.add(new_ids, final=finished)
        text, stopped = request.stops.push(text, final=finished)
        if stopped:
            # Free the cache now; outputs already on their way for this request are dropped.
            self._manager.cancel_request(request.internal_id)
            self._finish(request, FinishReason.STOP, text=text)
        elif finished:
            at_eos = bool(tokens) and tokens[-1] in self._eos_ids
            self._finish(request, FinishReason.STOP if at_eos else FinishReason.LENGTH, text=text)
        elif text:
            self._emit(request, text)
