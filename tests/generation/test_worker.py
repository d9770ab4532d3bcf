"""The inference worker on the real tiny model: streaming, cancellation, errors, claims."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time

import pytest
from channels.layers import get_channel_layer
from django.db import close_old_connections

from apps.generation.events import job_group
from apps.generation.models import GenerationJob, WorkerHeartbeat
from apps.generation.services import job_cancel, job_submit
from apps.generation.worker import InferenceWorker

ASK = [{"role": "user", "content": "Write a function that adds two numbers."}]


_workers: list[InferenceWorker] = []


@pytest.fixture(autouse=True)
def close_workers():
    yield
    # A worker's sender holds channel-layer connections on its own loop: release them.
    while _workers:
        _workers.pop().close()
    while _listeners:
        _listeners.pop().close()


def _worker(backend, name="w1", **kwargs):
    worker = InferenceWorker(
        backend.engine,
        worker_id=name,
        model_name=backend.model_name,
        device=backend.device,
        prompt_builder=backend.prompt_builder,
        **kwargs,
    )
    _workers.append(worker)
    return worker


def _run_until_finished(worker, job_ids, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        worker.step(poll_timeout=0.02)
        states = GenerationJob.objects.filter(pk__in=job_ids).values_list("state", flat=True)
        if all(state in {"done", "failed", "cancelled"} for state in states):
            return
    raise AssertionError("jobs did not finish in time")


class Listener:
    """A real channel-layer member of a job's group, collecting what followers would get.

    It listens on a loop of its own for as long as it lives, as a server's consumer does
    (the pub/sub layer delivers only to subscribers that are listening).
    """

    def __init__(self, job_id):
        self.events: queue.Queue = queue.Queue()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self.loop.run_until_complete, args=(self._listen(job_id, ready),), daemon=True
        )
        self.thread.start()
        assert ready.wait(10), "the listener did not subscribe"
        _listeners.append(self)

    async def _listen(self, job_id, ready):
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(job_group(job_id), channel)
        self.stop = asyncio.Event()
        ready.set()
        while True:
            receive = asyncio.ensure_future(layer.receive(channel))
            stopping = asyncio.ensure_future(self.stop.wait())
            done, _ = await asyncio.wait({receive, stopping}, return_when="FIRST_COMPLETED")
            if receive in done:
                self.events.put(receive.result())
            if stopping in done:
                receive.cancel()
                await layer.group_discard(job_group(job_id), channel)
                with contextlib.suppress(asyncio.CancelledError):
                    await receive
                return

    def drain(self, timeout=0.5):
        """Every event received until none has come for ``timeout`` seconds."""
        events = []
        while True:
            try:
                events.append(self.events.get(timeout=timeout))
            except queue.Empty:
                return events

    def close(self):
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.stop.set)
            self.thread.join(10)


_listeners: list[Listener] = []


def _apply(events):
    """Rebuild the text the way a browser does from the event protocol."""
    text, seq, attempt = "", 0, 0
    for event in events:
        if event["type"] == "job.rewind" and event["attempt"] > attempt:
            text, seq, attempt = event["text"], event["seq"], event["attempt"]
        elif event["type"] == "job.delta" and event["attempt"] >= attempt and event["seq"] > seq:
            attempt = event["attempt"]
            assert event["seq"] == seq + 1, "a gap in the sequence"
            text, seq = text + event["text"], event["seq"]
    return text


@pytest.mark.django_db(transaction=True)
def test_a_job_streams_coalesced_deltas_that_add_up_to_the_stored_text(demo_backend, settings):
    settings.QWEB_DELTA_TOKENS = 4
    job = job_submit(messages=ASK, params={"max_new_tokens": 40})
    listener = Listener(job.pk)
    worker = _worker(demo_backend)
    _run_until_finished(worker, [job.pk])
    events = listener.drain()
    job.refresh_from_db()
    assert job.state == GenerationJob.State.DONE
    assert job.finish_reason == "length"
    assert job.completion_tokens == 40
    assert job.prompt_tokens > 0
    deltas = [event for event in events if event["type"] == "job.delta"]
    assert [event["seq"] for event in deltas] == list(range(1, len(deltas) + 1))
    assert 1 < len(deltas) < 40  # coalesced, not one message per token
    assert _apply(events) == job.text
    assert events[-1]["type"] == "job.finished"
    assert events[-1]["completion_tokens"] == 40


@pytest.mark.django_db(transaction=True)
def test_several_jobs_are_served_at_once(demo_backend):
    jobs = [job_submit(messages=ASK, params={"max_new_tokens": 12}) for _ in range(4)]
    worker = _worker(demo_backend)
    worker.step()
    assert len(worker.streams) == 4
    _run_until_finished(worker, [job.pk for job in jobs])
    assert set(GenerationJob.objects.values_list("state", flat=True)) == {"done"}


@pytest.mark.django_db(transaction=True)
def test_greedy_jobs_give_the_same_text_alone_and_batched(demo_backend):
    alone = job_submit(messages=ASK, params={"max_new_tokens": 16})
    worker = _worker(demo_backend)
    _run_until_finished(worker, [alone.pk])
    batched = [job_submit(messages=ASK, params={"max_new_tokens": 16}) for _ in range(3)]
    _run_until_finished(worker, [job.pk for job in batched])
    alone.refresh_from_db()
    assert {job.text for job in GenerationJob.objects.filter(pk__in=[j.pk for j in batched])} == {
        alone.text
    }


@pytest.mark.django_db(transaction=True)
def test_a_cancelled_job_stops_within_seconds(demo_backend):
    job = job_submit(messages=ASK, params={"max_new_tokens": 1500})
    worker = _worker(demo_backend)
    for _ in range(20):
        worker.step(poll_timeout=0.02)
    job_cancel(job_id=job.pk)
    asked = time.monotonic()
    _run_until_finished(worker, [job.pk], timeout=30)
    # The worker reads the flag every CANCEL_CHECK_S (0.2 s), so a quiet machine stops in
    # about 0.3 s; 5 s is room for two cores shared with other runs, and the token count
    # below shows the job was stopped, not run out.
    assert time.monotonic() - asked < 5.0
    job.refresh_from_db()
    assert (job.state, job.finish_reason) == ("cancelled", "cancelled")
    assert job.completion_tokens < 1500


@pytest.mark.django_db(transaction=True)
def test_a_prompt_over_the_context_window_fails_with_a_clear_error(demo_backend):
    job = job_submit(
        messages=[{"role": "user", "content": "word " * 5000}], params={"max_new_tokens": 8}
    )
    _run_until_finished(_worker(demo_backend), [job.pk])
    job.refresh_from_db()
    assert job.state == GenerationJob.State.FAILED
    assert "context window" in job.error or "KV cache" in job.error


@pytest.mark.django_db(transaction=True)
def test_stop_strings_end_the_job_without_the_stop_text(demo_backend):
    probe = job_submit(messages=ASK, params={"max_new_tokens": 30})
    worker = _worker(demo_backend)
    _run_until_finished(worker, [probe.pk])
    probe.refresh_from_db()
    stop = probe.text[10:13]
    assert stop.strip(), "the tiny model's text has no usable stop string here"
    job = job_submit(messages=ASK, params={"max_new_tokens": 30, "stop": [stop]})
    _run_until_finished(worker, [job.pk])
    job.refresh_from_db()
    assert job.finish_reason == "stop"
    assert job.text == probe.text[: probe.text.index(stop)]


@pytest.mark.django_db(transaction=True)
def test_a_job_whose_worker_died_is_continued_from_its_checkpoint(demo_backend, settings):
    settings.QWEB_DELTA_TOKENS = 2
    job = job_submit(messages=ASK, params={"max_new_tokens": 60})
    listener = Listener(job.pk)
    dying = _worker(demo_backend, name="dying")
    while GenerationJob.objects.get(pk=job.pk).seq < 3:
        dying.step(poll_timeout=0.02)
        dying._checkpoint()
    # The worker "dies": it sends a little more, never checkpoints it, and its lease expires.
    for _ in range(5):
        dying.step(poll_timeout=0.02)
    demo_backend.engine.cancel(next(iter(dying.streams)))
    demo_backend.engine.poll(timeout=0.5)
    GenerationJob.objects.filter(pk=job.pk).update(lease_until="2000-01-01T00:00:00Z")
    checkpoint = GenerationJob.objects.get(pk=job.pk)

    _run_until_finished(_worker(demo_backend, name="rescuer"), [job.pk])
    job.refresh_from_db()
    assert job.attempts == 2
    assert job.state == GenerationJob.State.DONE
    assert job.text.startswith(checkpoint.text)
    # The continuation may end at the model's end-of-turn token; it never exceeds the budget.
    assert checkpoint.completion_tokens < job.completion_tokens <= 60
    events = listener.drain()
    assert any(event["type"] == "job.rewind" for event in events)
    assert _apply(events) == job.text  # what a follower shows: no duplicate, nothing missing


@pytest.mark.django_db(transaction=True)
def test_two_workers_never_take_the_same_job(demo_backend):
    jobs = [job_submit(messages=ASK, params={"max_new_tokens": 2}) for _ in range(12)]
    workers = [_worker(demo_backend, name=f"w{n}", max_jobs=12) for n in range(2)]
    barrier = threading.Barrier(2)

    def claim(worker):
        barrier.wait()
        try:
            worker._claim()
        finally:
            close_old_connections()

    threads = [threading.Thread(target=claim, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [{s.job_id for s in worker.streams.values()} for worker in workers]
    assert not claimed[0] & claimed[1]
    assert claimed[0] | claimed[1] == {job.pk for job in jobs}
    for worker in workers:
        for request_id in list(worker.streams):
            demo_backend.engine.cancel(request_id)
    demo_backend.engine.poll(timeout=0.5)


@pytest.mark.django_db(transaction=True)
def test_the_worker_reports_a_heartbeat(demo_backend):
    worker = _worker(demo_backend, name="beat")
    worker.step()
    beat = WorkerHeartbeat.objects.get(worker="beat")
    assert beat.device == "cpu"
    assert beat.model_name.endswith("(demo model)")
    assert beat.memory_bytes > 0


@pytest.mark.django_db(transaction=True)
def test_stopping_hands_running_jobs_back_with_their_checkpoint(demo_backend):
    job = job_submit(messages=ASK, params={"max_new_tokens": 1500})
    worker = _worker(demo_backend, name="leaving")
    for _ in range(10):
        worker.step(poll_timeout=0.02)
    worker.stopping.set()
    worker.run(grace_s=0)
    job.refresh_from_db()
    assert job.state == GenerationJob.State.QUEUED
    assert job.worker == ""
    assert job.max_attempts == 3  # the hand-back does not use up the retry
    assert job.text


@pytest.mark.django_db(transaction=True)
def test_the_same_worker_relays_jobs_to_a_remote_server(transformers_serve, settings):
    from django.test import override_settings

    from apps.generation.backends import remote_backend

    with override_settings(
        QWEB_INFERENCE_BACKEND="remote",
        QWEB_REMOTE_URL=transformers_serve.url,
        QWEB_REMOTE_MODEL=transformers_serve.model,
        # transformers serve reports no window (tests/generation/test_window.py)
        QWEB_CONTEXT_TOKENS=2048,
    ):
        backend = remote_backend()
    try:
        job = job_submit(messages=ASK, params={"max_new_tokens": 24})
        listener = Listener(job.pk)
        worker = _worker(backend, name="relay")
        _run_until_finished(worker, [job.pk], timeout=90)
        job.refresh_from_db()
        assert job.state == GenerationJob.State.DONE, job.error
        assert job.finish_reason == "length"
        assert job.completion_tokens == 24
        assert job.text
        assert _apply(listener.drain()) == job.text
    finally:
        backend.shutdown()


@pytest.mark.django_db(transaction=True)
def test_nul_characters_from_the_model_are_stored_and_sent_as_replacement_characters(
    demo_backend,
):
    from inference.events import TokenDelta

    job = job_submit(messages=ASK, params={"max_new_tokens": 2})
    listener = Listener(job.pk)
    worker = _worker(demo_backend, name="nul")
    worker.step()
    [stream] = worker.streams.values()
    demo_backend.engine.cancel(stream.request_id)
    demo_backend.engine.poll(timeout=0.5)
    worker._on_event(TokenDelta(stream.request_id, 1, "a\x00b", (1, 2)))
    worker._on_event(
        TokenDelta(stream.request_id, 2, "", (), finished=True, finish_reason="length")
    )
    job.refresh_from_db()
    assert job.text == "a\ufffdb"
    assert _apply(listener.drain()) == "a\ufffdb"


@pytest.mark.django_db(transaction=True)
async def test_a_follower_who_joined_while_the_job_was_queued_gets_the_whole_answer(
    client, owner, workspace, demo_backend
):
    from asgiref.sync import sync_to_async
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from qweb.asgi import application

    job = await database_sync_to_async(job_submit)(
        messages=ASK, params={"max_new_tokens": 24}, workspace_id=workspace.pk, user_id=owner.pk
    )
    await database_sync_to_async(client.force_login)(owner)
    follower = WebsocketCommunicator(
        application,
        f"/ws/jobs/{job.pk}/",
        headers=[
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
        ],
    )
    assert (await follower.connect())[0]
    events = [await follower.receive_json_from(timeout=5)]
    assert (events[0]["type"], events[0]["attempt"]) == ("job.snapshot", 0)

    worker = _worker(demo_backend, name="late")
    await sync_to_async(_run_until_finished, thread_sensitive=False)(worker, [job.pk])
    while events[-1]["type"] != "job.finished":
        events.append(await follower.receive_json_from(timeout=5))
    await follower.disconnect()
    stored = await GenerationJob.objects.aget(pk=job.pk)
    assert _apply(events) == stored.text
    assert stored.text


@pytest.mark.django_db(transaction=True)
async def test_an_idle_job_socket_stays_open_longer_than_the_redis_read_timeout(
    client, owner, workspace
):
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from qweb.asgi import application

    job = await database_sync_to_async(job_submit)(
        messages=ASK, workspace_id=workspace.pk, user_id=owner.pk
    )
    await database_sync_to_async(client.force_login)(owner)
    follower = WebsocketCommunicator(
        application,
        f"/ws/jobs/{job.pk}/",
        headers=[
            (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
        ],
    )
    assert (await follower.connect())[0]
    await follower.receive_json_from(timeout=5)
    assert await follower.receive_nothing(timeout=6.5)  # no close frame after 5 s of silence
    await follower.send_json_to({"type": "cancel"})
    finished = await follower.receive_json_from(timeout=5)
    assert finished["state"] == "cancelled"
    await follower.disconnect()
