"""`qweb.realtime`: events leave after commit, in order, through the real channel layer
(Redis pub/sub when REDIS_URL is set, as in a team deployment; in memory otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from types import MappingProxyType

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from qweb.realtime import (
    OrderedSender,
    access_changed_broadcast,
    broadcast,
    user_access_group,
)

pytestmark = pytest.mark.django_db(transaction=True)

GROUP = "realtime.test"
TIMEOUT = 10
# What no channel layer can send: the in-memory one refuses the group's name, and Redis
# cannot serialize the payload.
BAD_GROUP = "not a valid group name!"
UNSENDABLE = {"type": "thing.changed", "payload": object()}


class Listener:
    """A member of ``group`` on a loop of its own, as a server's consumer is (the pub/sub
    layer delivers only to subscribers that are listening), collecting what it receives."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.events: queue.Queue[dict] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(self._listen(ready),), daemon=True
        )
        self._thread.start()
        assert ready.wait(TIMEOUT), "the listener did not join its group"

    async def _listen(self, ready: threading.Event) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(self.group, channel)
        self._stop = asyncio.Event()
        # The in-memory layer may be fed from other threads, which wakes no loop: tick.
        ticking = asyncio.ensure_future(self._tick())
        ready.set()
        stopping = asyncio.ensure_future(self._stop.wait())
        # One receive at a time, never cancelled while listening: cancelling a pub/sub
        # receive unsubscribes the channel.
        while True:
            receiving = asyncio.ensure_future(layer.receive(channel))
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if receiving.done():
                self.events.put(receiving.result())
            if stopping.done():
                break
        receiving.cancel()
        ticking.cancel()
        await layer.group_discard(self.group, channel)
        with contextlib.suppress(asyncio.CancelledError):
            await receiving
            await ticking

    @staticmethod
    async def _tick() -> None:
        while True:
            await asyncio.sleep(0.05)

    def until(self, event_type: str) -> list[dict]:
        """What arrived, up to and including the first event of ``event_type``."""
        received = []
        while not received or received[-1]["type"] != event_type:
            received.append(self.events.get(timeout=TIMEOUT))
        return received

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(TIMEOUT)
        self._loop.close()


@pytest.fixture
def listen():
    """``listen(group)``: a listener on ``group``, closed at the end of the test."""
    listeners: list[Listener] = []

    def start(group: str = GROUP) -> Listener:
        listeners.append(Listener(group))
        return listeners[-1]

    yield start
    for listener in listeners:
        listener.close()


def _send_now(group: str, event: dict) -> None:
    """Straight through the layer, bypassing ``broadcast``: a marker for what came first."""
    async_to_sync(get_channel_layer().group_send)(group, event)


# broadcast -------------------------------------------------------------------------------


def test_a_broadcast_is_sent_to_the_group_once_the_transaction_commits(listen):
    listener = listen()

    with transaction.atomic():
        broadcast(GROUP, {"type": "thing.changed", "id": 7})
        # Sent directly while the transaction is still open: it must arrive first.
        _send_now(GROUP, {"type": "marker.before_commit"})

    assert listener.until("thing.changed") == [
        {"type": "marker.before_commit"},
        {"type": "thing.changed", "id": 7},
    ]


def test_a_rolled_back_transaction_sends_nothing(listen):
    listener = listen()

    with contextlib.suppress(RuntimeError), transaction.atomic():
        broadcast(GROUP, {"type": "thing.changed", "id": 1})
        raise RuntimeError("the change failed")
    with transaction.atomic():
        broadcast(GROUP, {"type": "thing.changed", "id": 2})

    assert listener.until("thing.changed") == [{"type": "thing.changed", "id": 2}]


def test_a_rolled_back_savepoint_drops_only_its_own_broadcast(listen):
    listener = listen()

    with transaction.atomic():
        broadcast(GROUP, {"type": "thing.changed", "id": 1})
        with contextlib.suppress(RuntimeError), transaction.atomic():
            broadcast(GROUP, {"type": "thing.changed", "id": 2})
            raise RuntimeError("the inner change failed")
        broadcast(GROUP, {"type": "thing.done"})

    assert listener.until("thing.done") == [
        {"type": "thing.changed", "id": 1},
        {"type": "thing.done"},
    ]


def test_outside_a_transaction_a_broadcast_is_sent_at_once(listen):
    listener = listen()

    broadcast(GROUP, MappingProxyType({"type": "thing.changed", "id": 3}))
    _send_now(GROUP, {"type": "marker.after"})

    assert listener.until("marker.after") == [
        {"type": "thing.changed", "id": 3},
        {"type": "marker.after"},
    ]


def test_a_broadcast_that_cannot_be_delivered_is_logged_and_the_commit_stands(listen, caplog):
    listener = listen()

    with caplog.at_level(logging.ERROR, logger="qweb.realtime"), transaction.atomic():
        broadcast(BAD_GROUP, UNSENDABLE)
        broadcast(GROUP, {"type": "thing.done"})

    assert listener.until("thing.done") == [{"type": "thing.done"}]
    assert "Could not broadcast thing.changed to not a valid group name!" in caplog.text


def test_without_a_channel_layer_a_broadcast_does_nothing(settings):
    settings.CHANNEL_LAYERS = {}

    with transaction.atomic():
        broadcast(GROUP, {"type": "thing.changed"})


# access groups ---------------------------------------------------------------------------


def test_each_user_has_one_access_group_named_by_id():
    assert user_access_group(42) == "access.user.42"
    assert user_access_group(42) != user_access_group(43)


def test_access_changed_reaches_that_users_group_after_commit(listen):
    theirs = listen(user_access_group(5))
    others = listen(user_access_group(6))

    with transaction.atomic():
        access_changed_broadcast(5)
        _send_now(user_access_group(5), {"type": "marker.before_commit"})
    _send_now(user_access_group(6), {"type": "marker.after"})

    assert theirs.until("access.changed") == [
        {"type": "marker.before_commit"},
        {"type": "access.changed"},
    ]
    assert others.until("marker.after") == [{"type": "marker.after"}]


def test_access_changed_is_not_sent_when_the_change_rolls_back(listen):
    listener = listen(user_access_group(5))

    with contextlib.suppress(RuntimeError), transaction.atomic():
        access_changed_broadcast(5)
        raise RuntimeError("the removal failed")
    _send_now(user_access_group(5), {"type": "marker.after"})

    assert listener.until("marker.after") == [{"type": "marker.after"}]


# OrderedSender ---------------------------------------------------------------------------


def _sender_threads() -> int:
    return sum(thread.name == "qweb-sender" for thread in threading.enumerate())


@pytest.fixture
def sender():
    sender = OrderedSender()
    yield sender
    sender.close()


def test_the_sender_delivers_in_the_order_events_were_queued(listen, sender):
    listener = listen()

    # Fewer than the in-memory layer holds for one channel (100), so both layers keep all.
    for seq in range(1, 81):
        sender.send(GROUP, {"type": "job.delta", "seq": seq})
    sender.send(GROUP, {"type": "job.finished"})

    received = listener.until("job.finished")
    assert [event.get("seq") for event in received] == [*range(1, 81), None]


def test_drain_returns_once_everything_queued_was_sent(listen, sender):
    listener = listen()
    for seq in range(1, 51):
        sender.send(GROUP, {"type": "job.delta", "seq": seq})

    assert sender.drain(timeout=TIMEOUT) is True
    # Sent means published: a marker sent now, directly, arrives after all of them.
    _send_now(GROUP, {"type": "marker.after"})
    received = listener.until("marker.after")
    assert [event.get("seq") for event in received] == [*range(1, 51), None]


def test_drain_with_nothing_queued_returns_at_once(sender):
    assert sender.drain(timeout=0) is True


def test_the_sender_keeps_its_own_copy_of_each_event(listen, sender):
    listener = listen()
    event = {"type": "job.delta", "seq": 1}

    sender.send(GROUP, event)
    event["seq"] = 99
    sender.send(GROUP, {"type": "job.finished"})

    assert listener.until("job.finished")[0] == {"type": "job.delta", "seq": 1}


def test_a_failed_send_is_logged_and_later_ones_still_go_out(listen, sender, caplog):
    listener = listen()

    with caplog.at_level(logging.ERROR, logger="qweb.realtime"):
        sender.send(BAD_GROUP, {**UNSENDABLE, "type": "job.delta"})
        sender.send(GROUP, {"type": "job.finished"})
        assert listener.until("job.finished") == [{"type": "job.finished"}]
        assert sender.drain(timeout=TIMEOUT)

    assert "Could not send job.delta to not a valid group name!" in caplog.text


def test_close_sends_what_is_queued_then_stops_its_thread(listen):
    listener = listen()
    senders_before = _sender_threads()
    sender = OrderedSender()
    for seq in range(1, 21):
        sender.send(GROUP, {"type": "job.delta", "seq": seq})
    sender.send(GROUP, {"type": "job.finished"})

    sender.close()

    assert _sender_threads() == senders_before
    received = listener.until("job.finished")
    assert [event.get("seq") for event in received] == [*range(1, 21), None]
    sender.close()  # a second close is harmless
