"""What every backend streams: the event type, its errors, and how a caller collects them.

Kept free of torch and transformers, so a worker that only relays to a remote server does
not load them.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from inference.params import SamplingParams


class FinishReason(StrEnum):
    """Why a request's stream ended. A str: it compares equal to, and is stored as, its value."""

    STOP = "stop"  # end-of-sequence token or stop string
    LENGTH = "length"  # max_new_tokens reached
    CANCELLED = "cancelled"
    ERROR = "error"  # TokenDelta.error says why


Prompt = Sequence[int] | Sequence[Mapping[str, Any]] | str


class EngineError(RuntimeError):
    """The engine cannot accept work (not started, shut down, or its generation thread died)."""


@dataclass(frozen=True)
class TokenDelta:
    """One streamed event of a request.

    ``seq`` starts at 1 and grows by one per event of the request. ``text`` is whole characters,
    never a split multi-byte one; concatenating a request's texts gives its full output, cut before
    any stop string. The last event has ``finished=True`` and a ``finish_reason``: "stop" (end of
    sequence token or stop string), "length" (``max_new_tokens``), "cancelled", or "error" (with
    ``error`` saying why in one line). ``token_ids`` are the ids consumed since the previous event
    (an end-of-sequence id included). Token counts are filled in on the last event.
    """

    request_id: str
    seq: int
    text: str
    token_ids: tuple[int, ...] = ()
    finished: bool = False
    finish_reason: FinishReason | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def drain(events: queue.Queue[TokenDelta], timeout: float | None) -> list[TokenDelta]:
    """Wait up to ``timeout`` seconds (None: forever) for one event; return all that are ready."""
    try:
        first = events.get(timeout=timeout)
    except queue.Empty:
        return []
    ready = [first]
    while True:
        try:
            ready.append(events.get_nowait())
        except queue.Empty:
            return ready


class StreamingBackend:
    """What the local engine and the remote backend share, and all a caller may use: submit,
    cancel, poll the event queue, list the live requests, shut down."""

    _POLL_INTERVAL = 0.05

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: queue.Queue[TokenDelta] = queue.Queue()
        self._live: dict[str, Any] = {}  # by the caller's request id
        self._closing = False
        self._closed = False

    def submit(self, request_id: str, prompt: Prompt, params: SamplingParams | None = None) -> None:
        """Queue a request; its events (deltas, then one finished event) arrive through `poll`."""
        raise NotImplementedError

    def cancel(self, request_id: str) -> bool:
        """Stop a live request now (its final event is "cancelled"); False if it is not live."""
        raise NotImplementedError

    def poll(self, timeout: float | None = None) -> list[TokenDelta]:
        """Wait up to ``timeout`` seconds (None: forever) for events; return all that are ready.

        Events of one request come in ``seq`` order. Meant for a single consumer thread.
        """
        return drain(self._events, timeout)

    def live_requests(self) -> list[str]:
        with self._lock:
            return list(self._live)

    def _begin_shutdown(self, *, wait_for_live: bool, timeout: float) -> float | None:
        """Refuse new work, optionally let live requests finish; the deadline, or None when
        already shut down."""
        with self._lock:
            if self._closed:
                return None
            self._closing = True
        deadline = time.monotonic() + timeout
        if wait_for_live:
            while self.live_requests() and time.monotonic() < deadline:
                time.sleep(self._POLL_INTERVAL)
        return deadline

    def shutdown(self, *, drain: bool = False, timeout: float = 30.0) -> None:
        raise NotImplementedError

    def __enter__(self) -> StreamingBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
