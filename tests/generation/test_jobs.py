"""The job service: submitting, validating, cancelling, and following a job's stream."""

from __future__ import annotations

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ValidationError

from apps.generation.events import job_group
from apps.generation.models import GenerationJob
from apps.generation.services import job_cancel, job_submit
from apps.generation.stream import job_snapshot, tail_append, tail_reset
from qweb.asgi import application

HELLO = [{"role": "user", "content": "Say hello"}]


def test_a_job_is_queued_with_default_parameters(db, settings):
    job = job_submit(messages=HELLO)
    assert job.state == GenerationJob.State.QUEUED
    assert job.params == {
        "temperature": 0.0,
        "top_p": 1.0,
        "max_new_tokens": settings.QWEB_MAX_NEW_TOKENS,
        "stop": [],
        "seed": None,
    }


@pytest.mark.parametrize(
    ("messages", "params", "message"),
    [
        ([], None, "at least one message"),
        ([{"role": "wizard", "content": "x"}], None, "unknown role"),
        ([{"role": "user", "content": 3}], None, "text content"),
        ([{"role": "user", "content": "x", "extra": 1}], None, "role and content"),
        ([{"role": "assistant", "content": "x"}], None, "must not be the assistant"),
        (HELLO, {"temperature": 5}, "between 0 and 2"),
        (HELLO, {"top_p": 0}, "above 0"),
        (HELLO, {"max_new_tokens": 0}, "max_new_tokens"),
        (HELLO, {"max_new_tokens": "lots"}, "must be numbers"),
        (HELLO, {"temperature": "0.5"}, "must be numbers"),
        (HELLO, {"seed": True}, "must be numbers"),
        (HELLO, {"stop": ["a"] * 5}, "up to 4 strings"),
        (HELLO, {"stop": [""]}, "1–64 characters"),
        (HELLO, {"beam_width": 3}, "Unknown parameters: beam_width"),
        (HELLO, [("temperature", 0.5)], "by name"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_queued(db, messages, params, message):
    with pytest.raises(ValidationError, match=message):
        job_submit(messages=messages, params=params)
    assert not GenerationJob.objects.exists()


def test_cancelling_a_queued_job_ends_it_at_once(db):
    job = job_cancel(job_id=job_submit(messages=HELLO).pk)
    assert job.state == GenerationJob.State.CANCELLED
    assert job.finish_reason == "cancelled"


def test_cancelling_a_running_job_asks_its_worker(db):
    job = job_submit(messages=HELLO)
    GenerationJob.objects.filter(pk=job.pk).update(state=GenerationJob.State.RUNNING)
    job = job_cancel(job_id=job.pk)
    assert job.state == GenerationJob.State.RUNNING
    assert job.cancel_requested


def test_the_snapshot_is_the_checkpoint_plus_the_live_tail(db):
    job = job_submit(messages=HELLO)
    GenerationJob.objects.filter(pk=job.pk).update(
        state=GenerationJob.State.RUNNING, text="Hel", seq=2, attempts=1
    )
    tail_reset(job.pk, 1)
    for seq, text in [(1, "H"), (2, "el"), (3, "lo"), (4, " wo")]:
        tail_append(job.pk, 1, seq, text)
    job.refresh_from_db()
    snapshot = job_snapshot(job)
    assert (snapshot["seq"], snapshot["text"]) == (4, "Hello wo")


def test_a_tail_from_an_older_attempt_is_ignored(db):
    job = job_submit(messages=HELLO)
    GenerationJob.objects.filter(pk=job.pk).update(
        state=GenerationJob.State.RUNNING, text="Hel", seq=2, attempts=2
    )
    tail_reset(job.pk, 1)
    tail_append(job.pk, 1, 3, "p me")
    job.refresh_from_db()
    assert job_snapshot(job)["text"] == "Hel"


async def _connect(client, user, job_id):
    from channels.db import database_sync_to_async

    await database_sync_to_async(client.force_login)(user)
    cookie = client.cookies["sessionid"].value
    communicator = WebsocketCommunicator(
        application,
        f"/ws/jobs/{job_id}/",
        headers=[
            (b"cookie", f"sessionid={cookie}".encode()),
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
        ],
    )
    connected, code = await communicator.connect()
    return communicator, connected, code


@pytest.mark.django_db(transaction=True)
async def test_a_follower_gets_the_snapshot_then_only_new_deltas(client, owner, workspace):
    from channels.db import database_sync_to_async

    job = await database_sync_to_async(job_submit)(
        messages=HELLO, workspace_id=workspace.pk, user_id=owner.pk
    )
    await GenerationJob.objects.filter(pk=job.pk).aupdate(
        state=GenerationJob.State.RUNNING, text="Hello", seq=3, attempts=1
    )
    communicator, connected, _ = await _connect(client, owner, job.pk)
    assert connected
    snapshot = await communicator.receive_json_from(timeout=3)
    assert (snapshot["type"], snapshot["text"], snapshot["seq"]) == ("job.snapshot", "Hello", 3)
    layer = get_channel_layer()
    group = job_group(job.pk)
    for seq, text in [(3, "o"), (4, ","), (5, " world")]:  # seq 3 is already in the snapshot
        await layer.group_send(
            group, {"type": "job.delta", "job_id": job.pk, "attempt": 1, "seq": seq, "text": text}
        )
    assert (await communicator.receive_json_from(timeout=3))["seq"] == 4
    assert (await communicator.receive_json_from(timeout=3))["text"] == " world"
    # A retry rewinds to the checkpoint; stale deltas of the dead attempt are dropped.
    await layer.group_send(
        group, {"type": "job.rewind", "job_id": job.pk, "attempt": 2, "seq": 3, "text": "Hello"}
    )
    await layer.group_send(
        group, {"type": "job.delta", "job_id": job.pk, "attempt": 1, "seq": 6, "text": "!"}
    )
    await layer.group_send(
        group, {"type": "job.delta", "job_id": job.pk, "attempt": 2, "seq": 4, "text": " there"}
    )
    rewind = await communicator.receive_json_from(timeout=3)
    assert (rewind["type"], rewind["text"]) == ("job.rewind", "Hello")
    delta = await communicator.receive_json_from(timeout=3)
    assert (delta["attempt"], delta["text"]) == (2, " there")
    assert await communicator.receive_nothing(timeout=0.2)
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_an_outsider_cannot_follow_or_cancel_a_job(client, owner, outsider, workspace):
    from channels.db import database_sync_to_async

    job = await database_sync_to_async(job_submit)(
        messages=HELLO, workspace_id=workspace.pk, user_id=owner.pk
    )
    _communicator, connected, code = await _connect(client, outsider, job.pk)
    assert not connected
    assert code == 4403


@pytest.mark.django_db(transaction=True)
async def test_a_viewer_may_watch_but_not_stop_a_job(client, owner, viewer, workspace):
    from channels.db import database_sync_to_async

    job = await database_sync_to_async(job_submit)(
        messages=HELLO, workspace_id=workspace.pk, user_id=owner.pk
    )
    communicator, connected, _ = await _connect(client, viewer, job.pk)
    assert connected
    await communicator.receive_json_from(timeout=3)
    await communicator.send_json_to({"type": "cancel"})
    reply = await communicator.receive_json_from(timeout=3)
    assert reply == {
        "type": "error",
        "code": "forbidden",
        "message": "You cannot stop this job.",
    }
    assert (await GenerationJob.objects.aget(pk=job.pk)).state == GenerationJob.State.QUEUED
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_owner_can_stop_a_queued_job_from_the_socket(client, owner, workspace):
    from channels.db import database_sync_to_async

    job = await database_sync_to_async(job_submit)(
        messages=HELLO, workspace_id=workspace.pk, user_id=owner.pk
    )
    communicator, _connected, _ = await _connect(client, owner, job.pk)
    await communicator.receive_json_from(timeout=3)
    await communicator.send_json_to({"type": "cancel"})
    finished = await communicator.receive_json_from(timeout=3)
    assert (finished["type"], finished["state"]) == ("job.finished", "cancelled")
    await communicator.disconnect()


def test_pages_say_when_the_demo_model_is_served(client, owner, settings, tmp_path):
    from apps.generation.context_processors import _is_demo

    settings.QWEB_MODEL_DIR = tmp_path
    (tmp_path / "config.json").write_text('{"qweb_demo_model": true}')
    _is_demo.cache_clear()
    client.force_login(owner)
    assert b"Demo model" in client.get("/").content
    (tmp_path / "config.json").write_text("{}")
    _is_demo.cache_clear()
    assert b"Demo model" not in client.get("/").content


def test_a_snapshot_never_returns_an_older_checkpoint_than_the_tail_was_trimmed_to(db):
    job = job_submit(messages=HELLO)
    GenerationJob.objects.filter(pk=job.pk).update(
        state=GenerationJob.State.RUNNING, text="He", seq=1, attempts=1
    )
    job.refresh_from_db()  # the follower loaded this row (seq 1) ...
    # ... then the worker checkpointed seq 3 and trimmed the tail to nothing.
    GenerationJob.objects.filter(pk=job.pk).update(text="Hello", seq=3)
    tail_reset(job.pk, 1)
    snapshot = job_snapshot(job)
    # Deltas 2 and 3 are never sent again: the snapshot must include them.
    assert (snapshot["seq"], snapshot["text"]) == (3, "Hello")


def test_a_snapshot_rereads_the_checkpoint_when_the_tail_was_trimmed_meanwhile(db):
    job = job_submit(messages=HELLO)
    GenerationJob.objects.filter(pk=job.pk).update(
        state=GenerationJob.State.RUNNING, text="He", seq=1, attempts=1
    )
    job.refresh_from_db()  # the follower read this checkpoint (seq 1) ...
    # ... then the worker checkpointed seq 3 and trimmed the tail before the follower read it.
    GenerationJob.objects.filter(pk=job.pk).update(text="Hello", seq=3)
    tail_reset(job.pk, 1)
    tail_append(job.pk, 1, 4, " wo")
    snapshot = job_snapshot(job)
    assert (snapshot["seq"], snapshot["text"]) == (4, "Hello wo")
