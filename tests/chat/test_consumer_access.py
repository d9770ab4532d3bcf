"""A conversation socket loses access the moment its user does, without sending anything.

Removal, deactivation and deleting the workspace each close the socket 4403 within a
second; nothing the conversation or its answer sends afterwards reaches that browser.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from apps.accounts.models import User
from apps.chat import services
from apps.chat.events import conversation_group
from apps.generation.events import job_group
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from tests.sockets import (
    FORBIDDEN,
    REVOCATIONS,
    TIMEOUT,
    change_role,
    connect_ready,
    expect_nothing_more,
    expect_revoked,
    receive_until,
    revoke_access,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def connect(sockets, user, conversation_id):
    return await connect_ready(
        sockets, user, f"/ws/conversations/{conversation_id}/", "conversation.ready"
    )


@database_sync_to_async
def ask(owner, conversation) -> tuple[int, int]:
    """The owner asks; no worker runs, so the answer stays pending: (answer id, job id)."""
    membership = Membership.objects.get(user=owner, workspace_id=conversation.workspace_id)
    services.conversation_post_message(
        membership=membership, conversation=conversation, text="Where is the tax computed?"
    )
    answer = conversation.messages.filter(role="assistant").get()
    return answer.pk, answer.job_id


@pytest.mark.parametrize("how", REVOCATIONS)
async def test_a_socket_following_an_answer_closes_when_access_goes(
    sockets, conversation, owner, member, workspace, how
):
    answer_id, job_id = await ask(owner, conversation)
    socket, ready = await connect(sockets, member, conversation.pk)
    assert ready["pending"] == [answer_id]
    snapshot = await socket.receive_json_from(timeout=TIMEOUT)
    assert (snapshot["type"], snapshot["message_id"]) == ("job.snapshot", answer_id)

    committed = await revoke_access(how, member, workspace)

    await expect_revoked(socket, committed)
    await expect_nothing_more(
        socket,
        (
            job_group(job_id),
            {"type": "job.delta", "job_id": job_id, "attempt": 0, "seq": 1, "text": "x"},
        ),
        (conversation_group(conversation.pk), {"type": "conversation.renamed", "title": "New"}),
    )


async def test_others_keep_their_sockets_when_one_member_is_removed(
    sockets, conversation, owner, member, viewer, workspace
):
    member_socket, _ = await connect(sockets, member, conversation.pk)
    viewer_socket, _ = await connect(sockets, viewer, conversation.pk)

    committed = await revoke_access("removed", member, workspace)

    await expect_revoked(member_socket, committed)
    await viewer_socket.send_json_to({"type": "ping"})
    assert await viewer_socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}


async def test_a_member_made_viewer_stays_but_may_no_longer_post(
    sockets, conversation, owner, member
):
    socket, ready = await connect(sockets, member, conversation.pk)
    assert ready["can_post"] is True

    await change_role(owner, member, Role.VIEWER)

    assert await socket.receive_json_from(timeout=1.0) == {
        "type": "access.changed",
        "can_post": False,
    }
    await socket.send_json_to({"type": "post", "text": "Still here?"})
    refused = await socket.receive_json_from(timeout=TIMEOUT)
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    assert not await conversation.messages.aexists()


async def test_a_change_no_notice_announced_is_caught_by_the_periodic_check(
    sockets, conversation, member, settings
):
    settings.QWEB_ACCESS_RECHECK_S = 1
    socket, _ = await connect(sockets, member, conversation.pk)
    # A bulk update sends no signals: only the periodic check can notice it.
    await User.objects.filter(pk=member.pk).aupdate(is_active=False)

    assert await socket.receive_json_from(timeout=2.5) == FORBIDDEN
    assert (await socket.receive_output(timeout=1.0))["code"] == 4403


async def test_presence_events_carry_no_server_channel_names(sockets, conversation, member, viewer):
    watcher, _ = await connect(sockets, member, conversation.pk)
    await watcher.send_json_to({"type": "presence"})
    late, _ = await connect(sockets, viewer, conversation.pk)
    await late.send_json_to({"type": "presence"})

    joined = (await receive_until(watcher, lambda f: f["type"] == "presence.joined"))[-1]
    here = (await receive_until(late, lambda f: f["type"] == "presence.here"))[-1]

    for frame in (joined, here):
        assert set(frame) == {"type", "user_id", "name", "initials", "presence_id"}
        assert "!" not in frame["presence_id"]  # channel names look like "specific.x!y"
    assert joined["presence_id"] != here["presence_id"]


async def test_a_deeply_nested_frame_is_a_bad_frame_and_posts_nothing(
    sockets, conversation, member
):
    socket, _ = await connect(sockets, member, conversation.pk)

    await socket.send_to(text_data='{"type": "post", "text": ' + "[" * 100_000)

    answer = await socket.receive_json_from(timeout=TIMEOUT)
    assert (answer["type"], answer["code"]) == ("error", "bad_frame")
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
    assert not await conversation.messages.aexists()
