"""The one way server code sends websocket events: after commit, through the channel layer.

The database is the truth and the channel layer only delivers, so events are sent once
the transaction that made them true has committed; a rolled-back change announces nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def user_access_group(user_id: int) -> str:
    """Every socket of one user, told when what that user may see changes (see consumers)."""
    return f"access.user.{user_id}"


def access_changed_broadcast(user_id: int) -> None:
    """After commit, every open socket of ``user_id`` checks its access again."""
    broadcast(user_access_group(user_id), {"type": "access.changed"})


def broadcast(group: str, event: Mapping[str, Any]) -> None:
    """Send ``event`` to every socket in ``group`` once the current transaction commits."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, dict(event))
        except Exception:
            # Delivery is best effort: pages re-read the database on reconnect.
            logger.exception("Could not broadcast %s to %s", event.get("type"), group)

    transaction.on_commit(send)


class OrderedSender:
    """Sends channel-layer messages from a thread, in order, without blocking it.

    ``async_to_sync(group_send)`` builds an event loop and a Redis connection per call
    (several ms each); a long-lived sender keeps one loop and one connection pool and sends
    from a queue, so the caller (the inference worker's loop) never waits on the network.
    """

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] | None = None
        self._ready = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._thread = threading.Thread(target=self._run, name="qweb-sender", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._queue = asyncio.Queue()
        self._ready.set()
        try:
            self._loop.run_until_complete(self._pump())
        finally:
            # channels_redis drops this loop's connection pool when the loop closes.
            self._loop.close()

    async def _pump(self) -> None:
        layer = get_channel_layer()
        assert self._queue is not None
        while True:
            item = await self._queue.get()
            if item is None:
                return
            group, event = item
            try:
                if layer is not None:
                    await layer.group_send(group, event)
            except Exception:
                logger.exception("Could not send %s to %s", event.get("type"), group)
            if self._queue.empty():
                self._idle.set()

    def send(self, group: str, event: Mapping[str, Any]) -> None:
        """Queue ``event`` for ``group``; messages go out in the order they were queued."""
        assert self._queue is not None
        self._idle.clear()
        self._loop.call_soon_threadsafe(self._queue.put_nowait, (group, dict(event)))

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until everything queued so far was sent; False on timeout."""
        return self._idle.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop the thread and release its connections."""
        if not self._thread.is_alive():
            return
        self.drain(timeout)
        assert self._queue is not None
        self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
        self._thread.join(timeout)
