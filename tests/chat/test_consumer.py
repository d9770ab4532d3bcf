"""The conversation websocket, through the real ASGI application, channel layer and worker.

Origin check and session auth included; events go through the channel layer the settings
choose (Redis when REDIS_URL is set, as in CI) and answers are written by the real inference
worker on the tiny model. Data must be committed (``on_commit`` events, consumers and the
worker on other threads), hence ``transaction=True``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import override_settings

from apps.accounts.models import User
from apps.chat import services
from apps.chat.models import Message
from apps.generation.models import GenerationJob
from apps.generation.stream import job_snapshot
from apps.generation.worker import InferenceWorker
from apps.workspaces.models import Membership
from qweb.consumers import CLOSE_GONE, CLOSE_NOT_ALLOWED, CLOSE_UNAUTHENTICATED
from tests.sockets import ALLOWED_ORIGIN, TIMEOUT, close, open_path, receive_until

pytestmark = pytest.mark.django_db(transaction=True)

QUESTION = "What does Invoice.total_with_tax return?"


# Sockets ---------------------------------------------------------------------------------------


async def open_socket(
    user: User | None, conversation_id: int, origin: bytes = ALLOWED_ORIGIN
) -> tuple[WebsocketCommunicator, bool, object]:
    return await open_path(user, f"/ws/conversations/{conversation_id}/", origin)


async def connect(sockets, user: User, conversation_id: int) -> tuple[WebsocketCommunicator, dict]:
    """An open socket and its ``conversation.ready`` frame."""
    communicator, connected, detail = await open_socket(user, conversation_id)
    assert connected, f"refused with {detail}"
    sockets.append(communicator)
    ready = await communicator.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "conversation.ready"
    assert ready["conversation_id"] == conversation_id
    return communicator, ready


def of_type(kind: str, message_id: int | None = None) -> Callable[[dict], bool]:
    def matches(frame: dict) -> bool:
        return frame["type"] == kind and message_id in (None, frame.get("message_id"))

    return matches


def reassemble(frames: list[dict], message_id: int) -> str:
    """The answer's text the way a page builds it: snapshot, then rewinds and deltas in order."""
    text, attempt, seq = None, 0, 0
    for frame in frames:
        if frame.get("message_id") != message_id:
            continue
        if frame["type"] == "job.snapshot":
            assert text is None, "a second snapshot"
            text, attempt, seq = frame["text"], frame["attempt"], frame["seq"]
        elif frame["type"] == "job.rewind":
            assert frame["attempt"] > attempt
            text, attempt, seq = frame["text"], frame["attempt"], frame["seq"]
        elif frame["type"] == "job.delta":
            assert text is not None, "a delta before the snapshot"
            assert frame["attempt"] == attempt
            assert frame["seq"] == seq + 1, f"seq {frame['seq']} after {seq}: a gap or a repeat"
            text, seq = text + frame["text"], frame["seq"]
    assert text is not None, "no snapshot"
    return text


def job_frames(frames: list[dict]) -> list[dict]:
    return [frame for frame in frames if frame["type"].startswith("job.")]


@database_sync_to_async
def messages_stored() -> list[tuple[str, str]]:
    return list(Message.objects.order_by("pk").values_list("role", "state"))


@database_sync_to_async
def answer_and_job(message_id: int) -> tuple[Message, GenerationJob]:
    answer = Message.objects.select_related("job").get(pk=message_id)
    return answer, answer.job


# The worker ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_backend(tiny_model_dir):
    """The real local backend on the tiny model (int8 experts, continuous batching)."""
    from apps.generation.backends import local_backend

    with override_settings(QWEB_MODEL_DIR=tiny_model_dir, QWEB_DEVICE="cpu"):
        backend = local_backend()
    yield backend
    backend.shutdown()


_workers: list[InferenceWorker] = []


@pytest.fixture(autouse=True)
def close_workers():
    yield
    # A worker's sender holds channel-layer connections on its own loop: release them, before
    # the test's loop closes the layer's pools (hence the dependency, which orders teardown).
    while _workers:
        _workers.pop().close()


def _worker(backend) -> InferenceWorker:
    worker = InferenceWorker(
        backend.engine,
        worker_id="chat-consumer",
        model_name=backend.model_name,
        device=backend.device,
        prompt_builder=backend.prompt_builder,
    )
    _workers.append(worker)
    return worker


def _step_until(worker: InferenceWorker, job_id: int, done: Callable[[GenerationJob], bool]):
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            worker.step(poll_timeout=0.02)
            job = GenerationJob.objects.get(pk=job_id)
            if done(job):
                return job
        raise AssertionError("the job did not get there in time")
    finally:
        connection.close()  # this runs on a pool thread: leave no connection behind


async def step_until(worker, job_id, done) -> GenerationJob:
    """Drive the worker on a thread while the sockets keep receiving on this loop."""
    return await sync_to_async(_step_until, thread_sensitive=False)(worker, job_id, done)


def finished(job: GenerationJob) -> bool:
    return job.is_finished


def streamed(deltas: int) -> Callable[[GenerationJob], bool]:
    """Running, with at least ``deltas`` deltas sent (checkpointed or in the live tail)."""

    def check(job: GenerationJob) -> bool:
        return job.state == GenerationJob.State.RUNNING and job_snapshot(job)["seq"] >= deltas

    return check


async def post_and_follow(socket, text=QUESTION) -> tuple[list[dict], int]:
    """Post a question; the frames up to the answer's snapshot, and the answer's id."""
    await socket.send_json_to({"type": "post", "text": text})
    frames = await receive_until(socket, of_type("job.snapshot"))
    return frames, frames[-1]["message_id"]


# Connecting ------------------------------------------------------------------------------------


async def test_a_member_connects_and_may_post(sockets, conversation, member):
    socket, ready = await connect(sockets, member, conversation.pk)

    assert ready["can_post"] is True
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}


async def test_a_viewer_connects_but_may_not_post(sockets, conversation, viewer):
    socket, ready = await connect(sockets, viewer, conversation.pk)

    assert ready["can_post"] is False
    await socket.send_json_to({"type": "post", "text": QUESTION})

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "forbidden")
    assert await messages_stored() == []
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}


async def test_an_outsider_is_refused(conversation, outsider):
    socket, connected, code = await open_socket(outsider, conversation.pk)

    assert (connected, code) == (False, CLOSE_NOT_ALLOWED)
    await close(socket)


async def test_an_unknown_conversation_is_refused_like_a_forbidden_one(conversation, member):
    socket, connected, code = await open_socket(member, conversation.pk + 1000)

    assert (connected, code) == (False, CLOSE_NOT_ALLOWED)
    await close(socket)


async def test_an_anonymous_visitor_is_refused(conversation):
    socket, connected, code = await open_socket(None, conversation.pk)

    assert (connected, code) == (False, CLOSE_UNAUTHENTICATED)
    await close(socket)


@pytest.mark.parametrize("origin", [b"https://evil.example", b"http://localhost.evil.example"])
async def test_a_page_on_a_foreign_origin_is_refused(conversation, member, origin):
    socket, connected, _ = await open_socket(member, conversation.pk, origin=origin)

    assert connected is False
    await close(socket)


# Frames from the page --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame", ["{not json", "[1, 2]", '"post"', "null", "{}", '{"type": 7}', '{"type": "shout"}']
)
async def test_a_malformed_frame_gets_bad_frame_and_the_socket_stays_usable(
    sockets, conversation, member, frame
):
    socket, _ = await connect(sockets, member, conversation.pk)

    await socket.send_to(text_data=frame)

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
    assert await messages_stored() == []


async def test_a_binary_frame_gets_bad_frame_and_the_socket_stays_usable(conversation, member):
    # Not through the ``sockets`` fixture: if the consumer crashes, its disconnect re-raises.
    socket, connected, _ = await open_socket(member, conversation.pk)
    assert connected
    await socket.receive_json_from(timeout=TIMEOUT)  # conversation.ready

    await socket.send_to(bytes_data=b"\x00\x01")

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
    await close(socket)


async def test_an_oversized_question_is_refused_as_invalid(sockets, conversation, member, settings):
    settings.QWEB_CHAT_MAX_MESSAGE_CHARS = 500
    socket, _ = await connect(sockets, member, conversation.pk)

    await socket.send_json_to({"type": "post", "text": "x" * 501})

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"], error["action"]) == ("error", "invalid", "post")
    assert "limited to 500 characters" in error["message"]
    assert await messages_stored() == []


async def test_pins_are_announced_to_everyone_and_bad_pins_are_refused(
    sockets, conversation, member, viewer
):
    member_socket, _ = await connect(sockets, member, conversation.pk)
    viewer_socket, _ = await connect(sockets, viewer, conversation.pk)

    await member_socket.send_json_to({"type": "pins", "pinned": ["nope.py"]})
    error = await member_socket.receive_json_from(timeout=TIMEOUT)
    assert (error["code"], error["action"]) == ("invalid", "pins")
    assert "nope.py" in error["message"]

    await member_socket.send_json_to({"type": "pins", "pinned": ["docs/notes.txt"]})
    expected = {
        "type": "conversation.pins_changed",
        "conversation_id": conversation.pk,
        "pinned": ["docs/notes.txt"],
    }
    assert await member_socket.receive_json_from(timeout=TIMEOUT) == expected
    assert await viewer_socket.receive_json_from(timeout=TIMEOUT) == expected

    await viewer_socket.send_json_to({"type": "pins", "pinned": []})
    assert (await viewer_socket.receive_json_from(timeout=TIMEOUT))["code"] == "forbidden"
    await conversation.arefresh_from_db()
    assert conversation.pinned_paths == ["docs/notes.txt"]


async def test_a_member_removed_while_connected_is_refused_at_the_next_frame(
    sockets, conversation, member
):
    socket, _ = await connect(sockets, member, conversation.pk)
    await database_sync_to_async(Membership.objects.filter(user=member).delete)()

    await socket.send_json_to({"type": "post", "text": QUESTION})

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "forbidden")
    assert await socket.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": CLOSE_NOT_ALLOWED,
    }
    assert await messages_stored() == []


async def test_a_deleted_conversation_closes_every_socket(sockets, conversation, owner, viewer):
    conversation_id = conversation.pk
    viewer_socket, _ = await connect(sockets, viewer, conversation_id)

    @database_sync_to_async
    def delete() -> None:
        services.conversation_delete(
            membership=Membership.objects.get(user=owner), conversation=conversation
        )

    await delete()

    assert await viewer_socket.receive_json_from(timeout=TIMEOUT) == {
        "type": "conversation.deleted",
        "conversation_id": conversation_id,
    }
    assert (await viewer_socket.receive_output(timeout=TIMEOUT))["code"] == CLOSE_GONE


async def test_a_flood_is_rate_limited_while_others_keep_receiving_events(
    sockets, conversation, owner, member, viewer, settings
):
    settings.QWEB_CHAT_RATE_COUNT = 2
    settings.QWEB_CHAT_RATE_SECONDS = 3600  # a fixed window: keep the test far from its edge
    member_socket, _ = await connect(sockets, member, conversation.pk)
    viewer_socket, _ = await connect(sockets, viewer, conversation.pk)

    for n in range(2):
        _, answer_id = await post_and_follow(member_socket, f"Question {n} about Invoice")
        # Stopped at once (still queued), so the one-answer-at-a-time rule does not apply.
        await member_socket.send_json_to({"type": "stop", "message_id": answer_id})
        stopped = await receive_until(member_socket, of_type("message.finished", answer_id))
        assert stopped[-1]["state"] == "cancelled"
        seen = await receive_until(viewer_socket, of_type("message.finished", answer_id))
        assert [f["type"] for f in seen if f["type"] == "message.created"] == [
            "message.created"
        ] * 2
        assert seen[-1]["state"] == "cancelled"

    await member_socket.send_json_to({"type": "post", "text": "Question 3 about Invoice"})

    error = await member_socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "rate_limited")
    assert 0 < error["retry_after"] <= 3600
    assert await viewer_socket.receive_nothing(timeout=0.3)
    assert len(await messages_stored()) == 4
    # Someone else is not held back: the owner's question reaches everyone.
    owner_socket, _ = await connect(sockets, owner, conversation.pk)
    await owner_socket.send_json_to({"type": "post", "text": "The owner asks"})
    for socket in (owner_socket, member_socket, viewer_socket):
        frames = await receive_until(socket, of_type("job.snapshot"))
        created = [f for f in frames if f["type"] == "message.created"]
        assert [(f["role"], f["author"]) for f in created] == [
            ("user", owner.display_name),
            ("assistant", "qweb"),
        ]


# Answers streaming -----------------------------------------------------------------------------


async def test_an_answer_streams_identically_to_every_socket_and_matches_what_is_stored(
    sockets, conversation, member, viewer, chat_backend, settings
):
    settings.QWEB_DELTA_TOKENS = 4
    member_socket, _ = await connect(sockets, member, conversation.pk)
    viewer_socket, _ = await connect(sockets, viewer, conversation.pk)
    await member_socket.send_json_to({"type": "post", "text": QUESTION})
    before = {}
    for name, socket in (("member", member_socket), ("viewer", viewer_socket)):
        before[name] = await receive_until(socket, of_type("job.snapshot"))
        created = [f for f in before[name] if f["type"] == "message.created"]
        assert [(f["role"], f["state"]) for f in created] == [
            ("user", "done"),
            ("assistant", "pending"),
        ]
        assert created[0]["html"] == f"<p>{QUESTION}</p>\n"
        assert created[1]["context"]["files"]
    answer_id = before["member"][-1]["message_id"]
    assert before["viewer"][-1]["message_id"] == answer_id

    await step_until(_worker(chat_backend), before["member"][-1]["job_id"], finished)

    answer, job = await answer_and_job(answer_id)
    assert job.state == GenerationJob.State.DONE
    assert job.text
    assert answer.content == job.text
    streams = {}
    for name, socket in (("member", member_socket), ("viewer", viewer_socket)):
        frames = before[name] + await receive_until(socket, of_type("message.finished"))
        assert reassemble(frames, answer_id) == job.text
        last_two = frames[-2:]
        assert [f["type"] for f in last_two] == ["job.finished", "message.finished"]
        assert last_two[0]["state"] == "done"
        assert last_two[1] == {
            "type": "message.finished",
            "conversation_id": conversation.pk,
            "message_id": answer_id,
            "state": "done",
            "html": answer.html,
            "error": "",
            "prompt_tokens": job.prompt_tokens,
            "completion_tokens": job.completion_tokens,
        }
        assert answer.html
        streams[name] = job_frames(frames)
    assert streams["member"] == streams["viewer"]
    assert sum(f["type"] == "job.delta" for f in streams["member"]) > 1
    # The one who asked learns their tokens today, now counted; the others nothing.
    assert await member_socket.receive_json_from(timeout=TIMEOUT) == {
        "type": "usage.today",
        "tokens": job.prompt_tokens + job.completion_tokens,
    }
    assert await viewer_socket.receive_nothing(timeout=0.3)


async def test_a_socket_joining_mid_answer_gets_the_text_so_far_then_the_rest(
    sockets, conversation, owner, member, chat_backend, settings
):
    settings.QWEB_DELTA_TOKENS = 2
    settings.QWEB_CHAT_ANSWER_TOKENS = 160
    member_socket, _ = await connect(sockets, member, conversation.pk)
    member_frames, answer_id = await post_and_follow(member_socket)
    answer, job = await answer_and_job(answer_id)
    worker = _worker(chat_backend)
    await step_until(worker, job.pk, streamed(4))

    late_socket, ready = await connect(sockets, owner, conversation.pk)
    assert ready["pending"] == [answer_id]
    snapshot = await late_socket.receive_json_from(timeout=TIMEOUT)
    assert (snapshot["type"], snapshot["message_id"]) == ("job.snapshot", answer_id)
    assert snapshot["seq"] >= 4
    assert snapshot["text"]
    job = await step_until(worker, job.pk, finished)

    assert job.state == GenerationJob.State.DONE
    assert job.completion_tokens > 8, "the answer ended before the late socket could join"
    late_frames = [snapshot, *await receive_until(late_socket, of_type("message.finished"))]
    assert any(frame["type"] == "job.delta" for frame in late_frames), "nothing after the join"
    assert reassemble(late_frames, answer_id) == job.text
    member_frames += await receive_until(member_socket, of_type("message.finished"))
    assert reassemble(member_frames, answer_id) == job.text
    answer, _ = await answer_and_job(answer_id)
    assert answer.content == job.text


async def test_stop_ends_a_running_answer_within_seconds(
    sockets, conversation, member, viewer, chat_backend, settings
):
    settings.QWEB_CHAT_ANSWER_TOKENS = 1000
    member_socket, _ = await connect(sockets, member, conversation.pk)
    viewer_socket, _ = await connect(sockets, viewer, conversation.pk)
    _, answer_id = await post_and_follow(member_socket)
    _, job = await answer_and_job(answer_id)
    worker = _worker(chat_backend)
    await step_until(worker, job.pk, streamed(2))

    await viewer_socket.send_json_to({"type": "stop", "message_id": answer_id})
    refused = await receive_until(viewer_socket, of_type("error"))
    assert refused[-1]["code"] == "forbidden"
    assert not (await GenerationJob.objects.aget(pk=job.pk)).cancel_requested
    await member_socket.send_json_to({"type": "stop", "message_id": answer_id})
    deadline = time.monotonic() + TIMEOUT
    while not (await GenerationJob.objects.aget(pk=job.pk)).cancel_requested:
        assert time.monotonic() < deadline, "the stop frame was not acted on"
        await sync_to_async(time.sleep)(0.02)
    asked = time.monotonic()
    job = await step_until(worker, job.pk, finished)

    # The worker reads the flag every 0.2 s: about 0.3 s on a quiet machine, and room here
    # for two cores shared with other runs; the token count shows it stopped early.
    assert time.monotonic() - asked < 5.0
    assert (job.state, job.finish_reason) == ("cancelled", "cancelled")
    assert job.completion_tokens < 1000
    answer, _ = await answer_and_job(answer_id)
    assert (answer.state, answer.content) == ("cancelled", job.text)
    for socket in (member_socket, viewer_socket):
        frames = await receive_until(socket, of_type("message.finished", answer_id))
        assert frames[-2]["type"] == "job.finished"
        assert frames[-2]["state"] == "cancelled"
        assert frames[-1]["state"] == "cancelled"
        assert frames[-1]["html"] == answer.html


async def test_pages_that_ask_see_who_else_is_watching(sockets, conversation, member, viewer):
    watcher, _ = await connect(sockets, member, conversation.pk)
    await watcher.send_json_to({"type": "presence"})
    assert await watcher.receive_nothing(timeout=0.3)  # alone so far
    late, _ = await connect(sockets, viewer, conversation.pk)
    await late.send_json_to({"type": "presence"})

    joined = await watcher.receive_json_from(timeout=TIMEOUT)
    assert (joined["type"], joined["user_id"], joined["name"]) == (
        "presence.joined",
        viewer.pk,
        viewer.display_name,
    )
    here = await late.receive_json_from(timeout=TIMEOUT)
    assert (here["type"], here["user_id"]) == ("presence.here", member.pk)

    await close(late)
    sockets.remove(late)
    left = await watcher.receive_json_from(timeout=TIMEOUT)
    assert (left["type"], left["user_id"]) == ("presence.left", viewer.pk)


async def test_clients_that_do_not_ask_neither_see_nor_show_presence(
    sockets, conversation, member, viewer
):
    quiet, _ = await connect(sockets, member, conversation.pk)
    other, _ = await connect(sockets, viewer, conversation.pk)
    await other.send_json_to({"type": "presence"})
    assert await quiet.receive_nothing(timeout=0.3)
    assert await other.receive_nothing(timeout=0.3)  # the quiet socket is not listed


# Frames the actions' forms refuse --------------------------------------------------------------

NO_ANSWER = "There is no such answer in this conversation."
NO_QUESTION = "There is no such question in this conversation."


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ({"type": "post", "text": 42}, "Write a question first."),
        ({"type": "post", "text": ["a question"]}, "Write a question first."),
        (
            {"type": "post", "text": QUESTION, "pinned": "docs/notes.txt"},
            "Pins are a list of file paths.",
        ),
        ({"type": "pins", "pinned": None}, "Pins are a list of file paths."),
        ({"type": "pins", "pinned": [1, 2]}, "Pins are a list of file paths."),
        ({"type": "stop", "message_id": "first"}, NO_ANSWER),
        ({"type": "regenerate"}, NO_ANSWER),
        ({"type": "regenerate", "message_id": "1"}, NO_ANSWER),
        ({"type": "edit", "text": "Other?"}, NO_QUESTION),
        ({"type": "edit", "message_id": 1, "text": 7}, "Write a question first."),
        ({"type": "post", "text": QUESTION, "parent_id": "1"}, NO_ANSWER),
    ],
)
async def test_a_frame_its_actions_form_refuses_gets_the_reason_and_stores_nothing(
    sockets, conversation, member, frame, reason
):
    socket, _ = await connect(sockets, member, conversation.pk)

    await socket.send_json_to(frame)

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert error == {"type": "error", "code": "invalid", "message": reason, "action": frame["type"]}
    assert await messages_stored() == []
    await conversation.arefresh_from_db()
    assert conversation.pinned_paths == []


async def test_a_viewer_is_refused_whatever_the_frame_holds(sockets, conversation, viewer):
    socket, _ = await connect(sockets, viewer, conversation.pk)

    await socket.send_json_to({"type": "regenerate", "message_id": "not a number"})

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "forbidden")


# Versions: regenerate, retry, edit -------------------------------------------------------------


async def stopped_answer(socket, text=QUESTION) -> tuple[int, int]:
    """Post and stop at once (still queued, no worker needed): (question id, answer id)."""
    frames, answer_id = await post_and_follow(socket, text)
    await socket.send_json_to({"type": "stop", "message_id": answer_id})
    await receive_until(socket, of_type("message.finished", answer_id))
    question = next(f for f in frames if f["type"] == "message.created" and f["role"] == "user")
    return question["message_id"], answer_id


@database_sync_to_async
def versions_stored() -> list[tuple[str, int | None, str]]:
    return list(Message.objects.order_by("pk").values_list("role", "parent_id", "state"))


async def test_a_stopped_answer_is_retried_live_for_everyone_as_a_new_version(
    sockets, conversation, member, viewer
):
    member_socket, _ = await connect(sockets, member, conversation.pk)
    viewer_socket, _ = await connect(sockets, viewer, conversation.pk)
    question_id, stopped_id = await stopped_answer(member_socket)
    await receive_until(viewer_socket, of_type("message.finished", stopped_id))

    await member_socket.send_json_to({"type": "regenerate", "message_id": stopped_id})

    for socket in (member_socket, viewer_socket):
        frames = await receive_until(socket, of_type("job.snapshot"))
        created = [f for f in frames if f["type"] == "message.created"]
        assert [(f["role"], f["parent_id"], f["state"]) for f in created] == [
            ("assistant", question_id, "pending")
        ]
        retry_id = created[0]["message_id"]
    assert await versions_stored() == [
        ("user", None, "done"),
        ("assistant", question_id, "cancelled"),
        ("assistant", question_id, "pending"),
    ]
    assert retry_id not in (question_id, stopped_id)


async def test_an_edited_question_is_asked_live_and_keeps_the_first_version(
    sockets, conversation, member, viewer
):
    member_socket, _ = await connect(sockets, member, conversation.pk)
    viewer_socket, _ = await connect(sockets, viewer, conversation.pk)
    first_question, first_answer = await stopped_answer(member_socket)
    second_question, second_answer = await stopped_answer(member_socket, "And then?")
    await receive_until(viewer_socket, of_type("message.finished", second_answer))

    await member_socket.send_json_to(
        {"type": "edit", "message_id": second_question, "text": "And after that?"}
    )

    for socket in (member_socket, viewer_socket):
        frames = await receive_until(socket, of_type("job.snapshot"))
        created = [f for f in frames if f["type"] == "message.created"]
        assert [(f["role"], f["parent_id"]) for f in created[-2:]] == [
            ("user", first_answer),
            ("assistant", created[-2]["message_id"]),
        ]
        assert created[-2]["html"] == "<p>And after that?</p>\n"
    stored = await versions_stored()
    assert stored[:4] == [
        ("user", None, "done"),
        ("assistant", first_question, "cancelled"),
        ("user", first_answer, "done"),
        ("assistant", second_question, "cancelled"),
    ]
    assert [(role, parent) for role, parent, _ in stored[4:]] == [
        ("user", first_answer),
        ("assistant", created[-2]["message_id"]),
    ]


async def test_a_viewer_can_neither_regenerate_nor_edit_and_nothing_is_stored(
    sockets, conversation, member, viewer
):
    member_socket, _ = await connect(sockets, member, conversation.pk)
    viewer_socket, _ = await connect(sockets, viewer, conversation.pk)
    question_id, answer_id = await stopped_answer(member_socket)
    await receive_until(viewer_socket, of_type("message.finished", answer_id))
    before = await versions_stored()

    for frame in (
        {"type": "regenerate", "message_id": answer_id},
        {"type": "edit", "message_id": question_id, "text": "Mine?"},
    ):
        await viewer_socket.send_json_to(frame)
        error = await viewer_socket.receive_json_from(timeout=TIMEOUT)
        assert (error["type"], error["code"]) == ("error", "forbidden")

    assert await member_socket.receive_nothing(timeout=0.3)
    assert await versions_stored() == before


async def test_regenerating_while_an_answer_is_written_is_refused_with_the_reason(
    sockets, conversation, member
):
    socket, _ = await connect(sockets, member, conversation.pk)
    _, answer_id = await post_and_follow(socket)

    await socket.send_json_to({"type": "regenerate", "message_id": answer_id})

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["code"], error["action"]) == ("invalid", "regenerate")
    assert "still being written" in error["message"]
    assert len(await versions_stored()) == 2
