"""What every backend streams: the event type, its errors, and how a caller collects them.

Kept free of torch and transformers, so a worker that only relays to a remote server does
not load them.
"""

from __future__ import annotations

import queue
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

FinishReason = Literal["stop", "length", "cancelled", "error"]
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
