"""A refactor socket loses access the moment its user does, without sending anything."""

from __future__ import annotations

import pytest

from apps.generation.events import job_group
from apps.refactors.events import session_group
from apps.workspaces.roles import Role
from tests.sockets import (
    REVOCATIONS,
    TIMEOUT,
    change_role,
    connect_ready,
    expect_nothing_more,
    expect_revoked,
    revoke_access,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(sockets, user, session_id):
    return await connect_ready(sockets, user, f"/ws/refactors/{session_id}/", "session.ready")


@pytest.fixture
def started(writing_snapshot, refactor_settings, transactional_db):
    """The project and a queued proposal, restored from their snapshot (built once)."""
    return writing_snapshot.restore()


@pytest.fixture
def workspace(started):
    return started.workspace


@pytest.fixture
def owner(started):
    return started.owner


@pytest.fixture
def writing(started):
    """A session whose first proposal is queued (no worker runs): the socket follows it."""
    return started.changeset


@pytest.mark.parametrize("how", REVOCATIONS)
async def test_a_socket_following_a_proposal_closes_when_access_goes(
    sockets, writing, member, workspace, how
):
    socket, _ = await connect(sockets, member, writing.session_id)
    snapshot = await socket.receive_json_from(timeout=TIMEOUT)
    assert (snapshot["type"], snapshot["changeset_id"]) == ("job.snapshot", writing.pk)

    committed = await revoke_access(how, member, workspace)

    await expect_revoked(socket, committed)
    job_id = writing.job_id
    await expect_nothing_more(
        socket,
        (
            job_group(job_id),
            {"type": "job.delta", "job_id": job_id, "attempt": 0, "seq": 1, "text": "x"},
        ),
        (
            session_group(writing.session_id),
            {"type": "comment.added", "changeset_id": writing.pk, "body": "after removal"},
        ),
    )


async def test_a_member_made_viewer_is_told_they_may_no_longer_review(
    sockets, writing, owner, member
):
    socket, ready = await connect(sockets, member, writing.session_id)
    await socket.receive_json_from(timeout=TIMEOUT)  # the proposal's snapshot
    assert ready["can_review"] is True

    await change_role(owner, member, Role.VIEWER)

    assert await socket.receive_json_from(timeout=1.0) == {
        "type": "access.changed",
        "can_review": False,
        "can_apply": False,
    }


async def test_a_deeply_nested_frame_is_a_bad_frame(sockets, writing, member):
    socket, _ = await connect(sockets, member, writing.session_id)
    await socket.receive_json_from(timeout=TIMEOUT)  # the proposal's snapshot

    await socket.send_to(text_data="[" * 100_000)

    answer = await socket.receive_json_from(timeout=TIMEOUT)
    assert (answer["type"], answer["code"]) == ("error", "bad_frame")
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
