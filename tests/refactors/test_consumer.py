"""The refactor session websocket, through the real ASGI application, channel layer and worker.

Origin check and session auth included; events go through the channel layer the settings
choose (Redis when REDIS_URL is set, as in CI) and one proposal is written by the real
inference worker on the tiny model. Data must be committed (``on_commit`` events, services
and the worker on other threads), hence ``transaction=True``; each test starts from a
snapshot of a proposal (ready, or being written) built once by the real services and
restored before it (see ``tests/refactors/conftest.py``).
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
from apps.generation.models import GenerationJob
from apps.generation.worker import InferenceWorker
from apps.refactors import services
from apps.refactors.models import (
    ChangeSet,
    HunkDecision,
    ProposalReview,
    ReviewComment,
    Suggestion,
)
from apps.workspaces.models import Membership
from qweb.consumers import CLOSE_NOT_ALLOWED, CLOSE_UNAUTHENTICATED
from tests.refactors.conftest import proposal_write, snapshot_take
from tests.refactors.test_flow import RENAME
from tests.sockets import ALLOWED_ORIGIN, TIMEOUT, close, open_path, receive_until

pytestmark = pytest.mark.django_db(transaction=True)


# Sockets ---------------------------------------------------------------------------------------


async def open_socket(
    user: User | None, session_id: int, origin: bytes = ALLOWED_ORIGIN
) -> tuple[WebsocketCommunicator, bool, object]:
    return await open_path(user, f"/ws/refactors/{session_id}/", origin)


async def connect(sockets, user: User, session_id: int) -> tuple[WebsocketCommunicator, dict]:
    """An open socket and its ``session.ready`` frame."""
    communicator, connected, detail = await open_socket(user, session_id)
    assert connected, f"refused with {detail}"
    sockets.append(communicator)
    ready = await communicator.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "session.ready"
    assert ready["session_id"] == session_id
    return communicator, ready


def of_type(kind: str, **fields: object) -> Callable[[dict], bool]:
    def matches(frame: dict) -> bool:
        return frame["type"] == kind and all(frame.get(k) == v for k, v in fields.items())

    return matches


async def pong(socket: WebsocketCommunicator) -> None:
    """The socket still answers."""
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}


@database_sync_to_async
def decisions() -> list[tuple[str, int, str]]:
    return list(HunkDecision.objects.order_by("pk").values_list("path", "hunk", "verdict"))


@database_sync_to_async
def decided_at() -> str:
    """When the one stored decision was made, as its event says it."""
    return HunkDecision.objects.get().decided_at.isoformat()


# Sessions --------------------------------------------------------------------------------------


def ready_write(*, membership, repository):
    return proposal_write(membership=membership, repository=repository, answer=RENAME)


@pytest.fixture(scope="module")
def ready_snapshot(django_db_setup, django_db_blocker, tmp_path_factory, tiny_model_dir):
    """The project and a proposal ready for review (the rename), committed once."""
    return snapshot_take(
        ready_write,
        tmp_path_factory=tmp_path_factory,
        django_db_blocker=django_db_blocker,
        tiny_model_dir=tiny_model_dir,
    )


@pytest.fixture
def started(request, ready_snapshot, writing_snapshot, refactor_settings, transactional_db):
    """The test's starting point restored: ``ready``'s or ``writing``'s, whichever it asks for."""
    # Both snapshots are taken at module and session scope, before any row of a test exists.
    snapshot = ready_snapshot if "ready" in request.fixturenames else writing_snapshot
    return snapshot.restore()


@pytest.fixture
def workspace(started):
    return started.workspace


@pytest.fixture
def owner(started):
    return started.owner


@pytest.fixture
def project(started):
    return started.repository


@pytest.fixture
def ready(started):
    """A proposal ready for review: the rename, every edit applied."""
    return started.changeset


@pytest.fixture
def writing(started):
    """A session whose first proposal is queued: the model has not started writing it."""
    return started.changeset


@database_sync_to_async
def regenerate(user: User, changeset: ChangeSet) -> ChangeSet:
    """Someone asks the model for a new proposal of ``changeset``'s session."""
    membership = Membership.objects.get(user=user, workspace_id=changeset.session.workspace_id)
    return services.refactor_regenerate(membership=membership, session=changeset.session)


def decide_frame(changeset: ChangeSet, **changes: object) -> dict:
    return {
        "type": "decide",
        "changeset_id": changeset.pk,
        "path": "billing/money.py",
        "hunk": 0,
        "verdict": "accept",
        **changes,
    }


# Connecting ------------------------------------------------------------------------------------


async def test_a_member_connects_and_may_review_but_not_apply(sockets, ready, member):
    socket, hello = await connect(sockets, member, ready.session_id)

    assert (hello["can_review"], hello["can_apply"]) == (True, False)
    await pong(socket)


async def test_an_admin_may_apply(sockets, ready, admin):
    _, hello = await connect(sockets, admin, ready.session_id)

    assert (hello["can_review"], hello["can_apply"]) == (True, True)


async def test_a_viewer_may_only_watch(sockets, ready, viewer):
    _, hello = await connect(sockets, viewer, ready.session_id)

    assert (hello["can_review"], hello["can_apply"]) == (False, False)


async def test_an_outsider_is_refused(ready, outsider):
    socket, connected, code = await open_socket(outsider, ready.session_id)

    assert (connected, code) == (False, CLOSE_NOT_ALLOWED)
    await close(socket)


async def test_an_unknown_session_is_refused_like_a_forbidden_one(ready, member):
    socket, connected, code = await open_socket(member, ready.session_id + 1000)

    assert (connected, code) == (False, CLOSE_NOT_ALLOWED)
    await close(socket)


async def test_an_anonymous_visitor_is_refused(ready):
    socket, connected, code = await open_socket(None, ready.session_id)

    assert (connected, code) == (False, CLOSE_UNAUTHENTICATED)
    await close(socket)


@pytest.mark.parametrize("origin", [b"https://evil.example", b"http://localhost.evil.example"])
async def test_a_page_on_a_foreign_origin_is_refused(ready, member, origin):
    socket, connected, _ = await open_socket(member, ready.session_id, origin=origin)

    assert connected is False
    await close(socket)


# Reviewing -------------------------------------------------------------------------------------


async def test_a_decision_reaches_every_socket_and_is_stored(sockets, ready, member, viewer):
    member_socket, _ = await connect(sockets, member, ready.session_id)
    viewer_socket, _ = await connect(sockets, viewer, ready.session_id)

    await member_socket.send_json_to(decide_frame(ready, hunk=1, verdict="reject"))
    received = await member_socket.receive_json_from(timeout=TIMEOUT)

    expected = {
        "type": "decision.changed",
        "session_id": ready.session_id,
        "changeset_id": ready.pk,
        "path": "billing/money.py",
        "hunk": 1,
        "verdict": "reject",
        "by": member.display_name,
        "by_id": member.pk,
        "at": await decided_at(),
        "version": 1,
    }
    assert received == expected
    assert await viewer_socket.receive_json_from(timeout=TIMEOUT) == expected
    assert await decisions() == [("billing/money.py", 1, "reject")]


async def test_accepting_everything_reaches_every_socket(sockets, ready, member, viewer):
    member_socket, _ = await connect(sockets, member, ready.session_id)
    viewer_socket, _ = await connect(sockets, viewer, ready.session_id)

    await member_socket.send_json_to(
        {"type": "decide_all", "changeset_id": ready.pk, "verdict": "accept"}
    )

    for socket in (member_socket, viewer_socket):
        event = await socket.receive_json_from(timeout=TIMEOUT)
        assert (event["type"], event["path"], event["hunk"], event["verdict"]) == (
            "decision.changed",
            "",
            -1,
            "accept",
        )
    assert sorted(await decisions()) == [
        ("billing/money.py", -1, "accept"),
        ("billing/views.py", -1, "accept"),
    ]


async def test_two_sockets_deciding_one_hunk_at_once_store_one_and_both_show_it(
    sockets, ready, member, admin
):
    first, _ = await connect(sockets, member, ready.session_id)
    second, _ = await connect(sockets, admin, ready.session_id)

    # Both frames leave before either page has heard of the other's verdict.
    await first.send_json_to(decide_frame(ready, verdict="accept", expected="undecided"))
    await second.send_json_to(decide_frame(ready, verdict="reject", expected="undecided"))

    frames = {}
    for socket in (first, second):
        frames[socket] = await receive_until(socket, lambda f: f["type"] == "decision.changed")
    [(path, hunk, verdict, by_id)] = await database_sync_to_async(
        lambda: list(HunkDecision.objects.values_list("path", "hunk", "verdict", "decided_by_id"))
    )()
    assert [(f[-1]["verdict"], f[-1]["by_id"]) for f in frames.values()] == [(verdict, by_id)] * 2
    winner, loser = (first, second) if by_id == member.pk else (second, first)
    # The refusal may come before or after the winner's verdict reaches the loser.
    refusal = [f for f in frames[loser] if f["type"] == "error"] or await receive_until(
        loser, lambda f: f["type"] == "error"
    )
    assert refusal[-1]["code"] == "stale"
    assert refusal[-1]["current"]["verdict"] == verdict
    assert refusal[-1]["current"]["by_id"] == by_id
    assert "Not saved" in refusal[-1]["message"]
    # The winner heard of one decision only: no second one was stored or sent.
    await winner.send_json_to({"type": "ping"})
    assert await winner.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
    assert (path, hunk) == ("billing/money.py", 0)


async def test_an_approval_over_the_socket_reaches_everyone_and_viewers_cannot_review(
    sockets, ready, member, viewer
):
    member_socket, _ = await connect(sockets, member, ready.session_id)
    viewer_socket, _ = await connect(sockets, viewer, ready.session_id)

    await member_socket.send_json_to(
        {"type": "review", "changeset_id": ready.pk, "state": "approve", "summary": "Good."}
    )

    for socket in (member_socket, viewer_socket):
        [event] = await receive_until(socket, lambda f: f["type"] == "review.changed")
        assert (event["reviewer_id"], event["state"], event["summary"]) == (
            member.pk,
            "approve",
            "Good.",
        )
        assert event["approval"] == {
            "required": 0,
            "approvals": 1,
            "changes_requested_by": [],
            "refusal": "",
        }
    await viewer_socket.send_json_to(
        {"type": "review", "changeset_id": ready.pk, "state": "approve", "summary": ""}
    )
    [refused] = await receive_until(viewer_socket, lambda f: f["type"] == "error")
    assert refused["code"] == "forbidden"
    count = await database_sync_to_async(ProposalReview.objects.count)()
    assert count == 1


async def test_a_socket_that_joins_is_told_the_latest_proposal_and_its_state(
    sockets, ready, viewer
):
    """A page rendered before the proposal moved on, whose event it missed, sees it here."""
    _, ready_frame = await connect(sockets, viewer, ready.session_id)

    assert ready_frame["latest"] == {
        "changeset_id": ready.pk,
        "number": ready.number,
        "state": "ready",
        "decisions_version": 0,
    }


async def test_a_viewer_cannot_decide(sockets, ready, member, viewer):
    member_socket, _ = await connect(sockets, member, ready.session_id)
    viewer_socket, _ = await connect(sockets, viewer, ready.session_id)

    await viewer_socket.send_json_to(decide_frame(ready))

    error = await viewer_socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "forbidden")
    assert await member_socket.receive_nothing(timeout=0.3)
    assert await decisions() == []
    await pong(viewer_socket)


@pytest.mark.parametrize(
    "frame", ["{not json", "[1, 2]", '"decide"', "null", "{}", '{"type": 7}', '{"type": "shout"}']
)
async def test_a_malformed_frame_gets_bad_frame_and_the_socket_stays_usable(
    sockets, ready, member, frame
):
    socket, _ = await connect(sockets, member, ready.session_id)

    await socket.send_to(text_data=frame)

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    await pong(socket)
    assert await decisions() == []


async def test_a_binary_frame_gets_bad_frame_and_the_socket_stays_usable(sockets, ready, member):
    socket, _ = await connect(sockets, member, ready.session_id)

    await socket.send_to(bytes_data=b"\x00\x01")

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "bad_frame")
    await pong(socket)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"changeset_id": None}, "No such proposal in this session."),
        ({"changeset_id": "1"}, "No such proposal in this session."),
        ({"changeset_id": 10**30}, "No such proposal in this session."),
        ({"path": None}, "No such file in this proposal."),
        ({"path": "billing/checks.py"}, "No such file in this proposal."),
        ({"hunk": "0"}, "No such hunk in this file."),
        ({"hunk": 2}, "No such hunk in this file."),
        ({"hunk": 10**30}, "No such hunk in this file."),
        ({"verdict": "maybe"}, "Accept, reject or clear."),
    ],
    ids=[
        "no-proposal",
        "proposal-as-text",
        "huge-proposal",
        "no-path",
        "unchanged-file",
        "hunk-as-text",
        "hunk-past-the-end",
        "huge-hunk",
        "unknown-verdict",
    ],
)
async def test_an_invalid_decision_is_explained_and_saves_nothing(
    sockets, ready, member, changes, message
):
    socket, _ = await connect(sockets, member, ready.session_id)

    await socket.send_json_to(decide_frame(ready, **changes))

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"], error["action"]) == ("error", "invalid", "decide")
    assert error["message"] == message
    assert await decisions() == []
    await pong(socket)


async def test_a_proposal_of_another_session_is_not_found(sockets, ready, propose, member):
    other = await database_sync_to_async(propose)(RENAME, instruction="The same again")
    socket, _ = await connect(sockets, member, ready.session_id)

    await socket.send_json_to(decide_frame(other))

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["code"], error["message"]) == ("invalid", "No such proposal in this session.")
    assert await decisions() == []


async def test_deciding_on_a_replaced_proposal_is_refused(sockets, ready, member, owner):
    newer = await regenerate(owner, ready)
    socket, _ = await connect(sockets, member, ready.session_id)
    snapshot = await socket.receive_json_from(timeout=TIMEOUT)
    assert (snapshot["type"], snapshot["changeset_id"]) == ("job.snapshot", newer.pk)

    await socket.send_json_to(decide_frame(ready))

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["code"], error["action"]) == ("invalid", "decide")
    assert "newer proposal replaced this one" in error["message"]
    assert await decisions() == []


async def test_a_comment_reaches_every_socket_and_is_stored(sockets, ready, member, viewer):
    member_socket, _ = await connect(sockets, member, ready.session_id)
    viewer_socket, _ = await connect(sockets, viewer, ready.session_id)

    await member_socket.send_json_to(
        {
            "type": "comment",
            "changeset_id": ready.pk,
            "path": "billing/money.py",
            "line": 6,
            "side": "new",
            "body": "Keep an alias?",
        }
    )

    frames = [
        await member_socket.receive_json_from(timeout=TIMEOUT),
        await viewer_socket.receive_json_from(timeout=TIMEOUT),
    ]
    comment = await ReviewComment.objects.select_related("author").aget()
    assert (comment.path, comment.line, comment.side, comment.body, comment.author_id) == (
        "billing/money.py",
        6,
        "new",
        "Keep an alias?",
        member.pk,
    )
    expected = {
        "type": "comment.added",
        "session_id": ready.session_id,
        "changeset_id": ready.pk,
        "comment_id": comment.pk,
        "path": "billing/money.py",
        "line": 6,
        "side": "new",
    }
    assert frames == [expected, expected]


@pytest.mark.parametrize(
    "changes",
    [{"line": 0}, {"line": "6"}, {"line": 2**31}, {"side": "middle"}, {"body": " "}],
    ids=["line-zero", "line-as-text", "line-too-big", "unknown-side", "empty"],
)
async def test_an_invalid_comment_is_explained_and_saves_nothing(sockets, ready, member, changes):
    socket, _ = await connect(sockets, member, ready.session_id)
    frame = {
        "type": "comment",
        "changeset_id": ready.pk,
        "path": "billing/money.py",
        "line": 6,
        "side": "new",
        "body": "Hm",
        **changes,
    }

    await socket.send_json_to(frame)

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"], error["action"]) == ("error", "invalid", "comment")
    assert not await ReviewComment.objects.aexists()
    await pong(socket)


async def test_a_member_removed_while_connected_is_refused_at_the_next_frame(
    sockets, ready, member
):
    socket, _ = await connect(sockets, member, ready.session_id)
    await database_sync_to_async(Membership.objects.filter(user=member).delete)()

    await socket.send_json_to(decide_frame(ready))

    error = await socket.receive_json_from(timeout=TIMEOUT)
    assert (error["type"], error["code"]) == ("error", "forbidden")
    assert await socket.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": CLOSE_NOT_ALLOWED,
    }
    assert await decisions() == []


# A proposal being written ----------------------------------------------------------------------


async def test_a_proposal_being_written_is_followed_until_it_is_ready(
    sockets, writing, member, viewer, propose
):
    member_socket, _ = await connect(sockets, member, writing.session_id)
    viewer_socket, _ = await connect(sockets, viewer, writing.session_id)
    for socket in (member_socket, viewer_socket):
        assert await socket.receive_json_from(timeout=TIMEOUT) == {
            "type": "job.snapshot",
            "job_id": writing.job_id,
            "attempt": 0,
            "seq": 0,
            "text": "",
            "state": GenerationJob.State.QUEUED,
            "changeset_id": writing.pk,
        }

    # The model's answer arrives: the job-finished hook, then the build task.
    built = await database_sync_to_async(propose.finish)(writing, RENAME)

    assert built.state == ChangeSet.State.READY
    for socket in (member_socket, viewer_socket):
        frames = await receive_until(socket, of_type("changeset.changed", state="ready"))
        changes = [f for f in frames if f["type"] == "changeset.changed"]
        assert [f["state"] for f in changes] == ["building", "ready"]
        assert changes[-1] == {
            "type": "changeset.changed",
            "session_id": writing.session_id,
            "changeset_id": writing.pk,
            "number": 1,
            "state": "ready",
            "job_id": writing.job_id,
        }


async def test_a_new_proposal_is_announced_and_followed(sockets, ready, member, viewer):
    viewer_socket, _ = await connect(sockets, viewer, ready.session_id)

    newer = await regenerate(member, ready)

    changed = await viewer_socket.receive_json_from(timeout=TIMEOUT)
    assert (changed["type"], changed["changeset_id"], changed["number"], changed["state"]) == (
        "changeset.changed",
        newer.pk,
        2,
        "generating",
    )
    snapshot = await viewer_socket.receive_json_from(timeout=TIMEOUT)
    assert (snapshot["type"], snapshot["job_id"], snapshot["changeset_id"]) == (
        "job.snapshot",
        newer.job_id,
        newer.pk,
    )


async def test_a_member_stops_a_queued_proposal_and_everyone_sees_it_end(
    sockets, writing, member, viewer
):
    member_socket, _ = await connect(sockets, member, writing.session_id)
    viewer_socket, _ = await connect(sockets, viewer, writing.session_id)
    for socket in (member_socket, viewer_socket):
        await receive_until(socket, of_type("job.snapshot"))

    await viewer_socket.send_json_to({"type": "stop", "changeset_id": writing.pk})
    assert (await viewer_socket.receive_json_from(timeout=TIMEOUT))["code"] == "forbidden"
    job = await GenerationJob.objects.aget(pk=writing.job_id)
    assert job.state == GenerationJob.State.QUEUED

    await member_socket.send_json_to({"type": "stop", "changeset_id": writing.pk})

    for socket in (member_socket, viewer_socket):
        frames = await receive_until(socket, of_type("job.finished"))
        assert (frames[-1]["state"], frames[-1]["changeset_id"]) == ("cancelled", writing.pk)
    job = await GenerationJob.objects.aget(pk=writing.job_id)
    assert job.state == GenerationJob.State.CANCELLED
    changeset = await ChangeSet.objects.aget(pk=writing.pk)
    assert changeset.state == ChangeSet.State.BUILDING  # what was written (nothing) is built


# The worker ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refactor_backend(tiny_model_dir):
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
    # A worker's sender holds channel-layer connections on its own loop: release them before
    # the test's loop closes the layer's pools (hence the dependency, which orders teardown).
    while _workers:
        _workers.pop().close()


def _step_until_finished(worker: InferenceWorker, job_id: int) -> GenerationJob:
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            worker.step(poll_timeout=0.02)
            job = GenerationJob.objects.get(pk=job_id)
            if job.is_finished:
                return job
        raise AssertionError("the job did not finish in time")
    finally:
        connection.close()  # this runs on a pool thread: leave no connection behind


def reassemble(frames: list[dict], changeset_id: int) -> str:
    """The proposal's text the way the page builds it: snapshot, then rewinds and deltas."""
    text, attempt, seq = None, 0, 0
    for frame in frames:
        assert frame["changeset_id"] == changeset_id
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


async def test_a_proposal_streams_to_every_socket_and_is_built_when_written(
    sockets, writing, member, viewer, refactor_backend, settings
):
    settings.QWEB_DELTA_TOKENS = 4
    settings.QWEB_REFACTOR_ANSWER_TOKENS = 48
    member_socket, _ = await connect(sockets, member, writing.session_id)
    viewer_socket, _ = await connect(sockets, viewer, writing.session_id)
    # Both sockets hold the snapshot of the queued job before the worker claims it.
    snapshots = [
        await member_socket.receive_json_from(timeout=TIMEOUT),
        await viewer_socket.receive_json_from(timeout=TIMEOUT),
    ]
    assert [(f["type"], f["state"]) for f in snapshots] == [("job.snapshot", "queued")] * 2
    worker = InferenceWorker(
        refactor_backend.engine,
        worker_id="refactor-consumer",
        model_name=refactor_backend.model_name,
        device=refactor_backend.device,
        prompt_builder=refactor_backend.prompt_builder,
    )
    _workers.append(worker)

    job = await sync_to_async(_step_until_finished, thread_sensitive=False)(worker, writing.job_id)

    assert job.state == GenerationJob.State.DONE and job.text
    changeset = await ChangeSet.objects.aget(pk=writing.pk)
    # The job-finished hook stored the answer and queued the build.
    assert (changeset.state, changeset.answer) == (ChangeSet.State.BUILDING, job.text)
    streams = []
    for socket, snapshot in zip((member_socket, viewer_socket), snapshots, strict=True):
        frames = [snapshot, *await receive_until(socket, of_type("job.finished"))]
        if not any(f["type"] == "changeset.changed" for f in frames):
            frames += await receive_until(socket, of_type("changeset.changed"))
        assert reassemble([f for f in frames if f["type"].startswith("job.")], writing.pk) == (
            job.text
        )
        assert sum(f["type"] == "job.delta" for f in frames) > 1
        building = [f for f in frames if f["type"] == "changeset.changed"]
        assert [(f["changeset_id"], f["state"]) for f in building] == [(writing.pk, "building")]
        streams.append([f for f in frames if f["type"].startswith("job.")])
    assert streams[0] == streams[1]

    built = await database_sync_to_async(services.changeset_build)(changeset_id=writing.pk)

    # The tiny random model writes no edit blocks: built, with nothing to review.
    assert built.state == ChangeSet.State.NO_EDITS
    for socket in (member_socket, viewer_socket):
        built_event = await socket.receive_json_from(timeout=TIMEOUT)
        assert (built_event["type"], built_event["state"]) == ("changeset.changed", "no_edits")


# Threads and suggestions -----------------------------------------------------------------------

MONEY = "billing/money.py"


@database_sync_to_async
def thread_by(user, changeset, line=11) -> ReviewComment:
    membership = Membership.objects.get(user=user, workspace_id=changeset.session.workspace_id)
    return services.comment_add(
        membership=membership, changeset=changeset, path=MONEY, line=line, body="Why?"
    )


async def test_a_reply_and_a_resolve_reach_every_socket(sockets, ready, member, viewer):
    root = await thread_by(member, ready)
    member_socket, _ = await connect(sockets, member, ready.session_id)
    viewer_socket, _ = await connect(sockets, viewer, ready.session_id)

    await member_socket.send_json_to(
        {"type": "reply", "changeset_id": ready.pk, "thread_id": root.pk, "body": "On it"}
    )
    frames = [
        (await receive_until(socket, of_type("thread.changed", change="reply")))[-1]
        for socket in (member_socket, viewer_socket)
    ]
    reply = await ReviewComment.objects.aget(thread=root)
    assert reply.body == "On it" and reply.author_id == member.pk
    assert [f["comment_id"] for f in frames] == [reply.pk, reply.pk]
    assert {f["path"] for f in frames} == {MONEY}

    await member_socket.send_json_to(
        {"type": "resolve", "changeset_id": ready.pk, "thread_id": root.pk}
    )
    for socket in (member_socket, viewer_socket):
        frames = await receive_until(socket, of_type("thread.changed", change="resolved"))
        frame = frames[-1]
        assert frame["by"] == member.display_name
    assert (await ReviewComment.objects.aget(pk=root.pk)).resolved_by_id == member.pk


async def test_a_viewer_cannot_reply_resolve_or_suggest_over_the_socket(
    sockets, ready, member, viewer
):
    root = await thread_by(member, ready)
    socket, _ = await connect(sockets, viewer, ready.session_id)

    for frame in (
        {"type": "reply", "thread_id": root.pk, "body": "Me too"},
        {"type": "resolve", "thread_id": root.pk},
        {"type": "suggest", "path": MONEY, "start": 6, "length": 1, "suggested": "x = 1"},
    ):
        await socket.send_json_to({**frame, "changeset_id": ready.pk})
        error = await socket.receive_json_from(timeout=TIMEOUT)
        assert (error["type"], error["code"]) == ("error", "forbidden")

    assert await ReviewComment.objects.acount() == 1
    assert (await ReviewComment.objects.aget()).resolved_at is None
    assert not await Suggestion.objects.aexists()
    await pong(socket)


async def test_a_suggestion_made_and_accepted_live_becomes_the_next_proposal(
    sockets, ready, member, owner
):
    member_socket, _ = await connect(sockets, member, ready.session_id)
    owner_socket, _ = await connect(sockets, owner, ready.session_id)

    await member_socket.send_json_to(
        {
            "type": "suggest",
            "changeset_id": ready.pk,
            "path": MONEY,
            "start": 6,
            "length": 1,
            "suggested": "def gross(amount, rate):",
        }
    )
    made = (await receive_until(owner_socket, of_type("suggestion.changed", state="open")))[-1]
    await owner_socket.send_json_to(
        {
            "type": "suggestion_accept",
            "changeset_id": ready.pk,
            "suggestion_id": made["suggestion_id"],
        }
    )

    accepted = (
        await receive_until(member_socket, of_type("suggestion.changed", state="accepted"))
    )[-1]
    newer = await ChangeSet.objects.aget(number=2)
    assert accepted["result_changeset_id"] == newer.pk
    assert (newer.state, newer.kind) == (ChangeSet.State.READY, ChangeSet.Kind.MANUAL)
