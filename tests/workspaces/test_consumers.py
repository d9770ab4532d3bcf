"""The workspace websocket, through the real ASGI application (origin check and auth included).

These run on the channel layer the settings choose: Redis when REDIS_URL is set, as in CI.
They need committed data (``on_commit`` events, consumers on other threads), hence
``transaction=True``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.core.exceptions import ValidationError
from django.db import transaction
from django.test import Client

from apps.accounts.models import User
from apps.workspaces import services
from apps.workspaces.events import workspace_group
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from qweb.asgi import application
from qweb.consumers import CLOSE_NOT_ALLOWED as CLOSE_NOT_A_MEMBER
from qweb.consumers import CLOSE_UNAUTHENTICATED
from tests import factories
from tests.sockets import (
    REVOCATIONS,
    change_role,
    expect_nothing_more,
    expect_revoked,
    open_path,
    revoke_access,
)

pytestmark = pytest.mark.django_db(transaction=True)

ALLOWED_ORIGIN = b"http://localhost"
TIMEOUT = 3


@database_sync_to_async
def session_cookie(user: User) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_socket(
    user: User | None, slug: str = "acme", origin: bytes = ALLOWED_ORIGIN
) -> tuple[WebsocketCommunicator, bool, object]:
    return await open_path(user, f"/ws/w/{slug}/", origin)


@database_sync_to_async
def remove(actor: User, target: User) -> None:
    services.membership_remove(
        actor=Membership.objects.get(user=actor, workspace__slug="acme"),
        membership_id=Membership.objects.get(user=target, workspace__slug="acme").pk,
    )


@pytest.fixture(autouse=True)
async def fresh_layer_connections() -> AsyncIterator[None]:
    yield
    layer = get_channel_layer()
    # The Redis layer keeps connections per event loop, and every test has its own loop.
    if hasattr(layer, "close_pools"):
        await layer.close_pools()


async def close(communicator: WebsocketCommunicator) -> None:
    # A consumer on the Redis layer sits in a blocking read for up to its brpop_timeout (5 s)
    # after the socket closes; the communicator cancels it once this short wait is over.
    await communicator.disconnect(timeout=0.1)


@pytest.fixture
async def sockets() -> AsyncIterator[list[WebsocketCommunicator]]:
    """Communicators opened by a test, closed at its end."""
    opened: list[WebsocketCommunicator] = []
    yield opened
    for communicator in opened:
        await close(communicator)


async def connect(sockets, user: User | None, **kwargs) -> WebsocketCommunicator:
    communicator, connected, detail = await open_socket(user, **kwargs)
    sockets.append(communicator)
    assert connected, f"refused with {detail}"
    return communicator


# Connecting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER])
async def test_every_member_can_connect_and_ping(sockets, users_by_role, role):
    socket = await connect(sockets, users_by_role[role])

    await socket.send_json_to({"type": "ping"})

    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}


async def test_an_anonymous_visitor_is_refused(workspace):
    socket, connected, code = await open_socket(None)

    assert (connected, code) == (False, CLOSE_UNAUTHENTICATED)
    await close(socket)


async def test_an_outsider_is_refused(outsider, workspace):
    socket, connected, code = await open_socket(outsider)

    assert (connected, code) == (False, CLOSE_NOT_A_MEMBER)
    await close(socket)


async def test_a_deactivated_member_is_refused(member):
    cookie = await session_cookie(member)
    await database_sync_to_async(User.objects.filter(pk=member.pk).update)(is_active=False)
    communicator = WebsocketCommunicator(
        application,
        "/ws/w/acme/",
        headers=[(b"host", b"localhost"), (b"origin", ALLOWED_ORIGIN), (b"cookie", cookie)],
    )

    connected, code = await communicator.connect(timeout=TIMEOUT)

    assert (connected, code) == (False, CLOSE_UNAUTHENTICATED)
    await close(communicator)


async def test_a_member_is_refused_for_a_workspace_that_does_not_exist(member):
    socket, connected, code = await open_socket(member, slug="no-such-team")

    assert (connected, code) == (False, CLOSE_NOT_A_MEMBER)
    await close(socket)


@pytest.mark.parametrize(
    "origin", [b"https://evil.example", b"http://localhost.evil.example", b"null"]
)
async def test_a_page_on_a_foreign_origin_is_refused(member, origin):
    socket, connected, _ = await open_socket(member, origin=origin)

    assert connected is False
    await close(socket)


async def test_a_socket_without_an_origin_header_is_refused(member):
    communicator = WebsocketCommunicator(
        application,
        "/ws/w/acme/",
        headers=[(b"host", b"localhost"), (b"cookie", await session_cookie(member))],
    )

    connected, _ = await communicator.connect(timeout=TIMEOUT)

    assert connected is False
    await close(communicator)


# Events after commit -------------------------------------------------------------------------


async def test_members_receive_a_role_change_after_it_commits(sockets, owner, member, viewer):
    member_socket = await connect(sockets, member)
    viewer_socket = await connect(sockets, viewer)

    await change_role(owner, member, Role.ADMIN)

    expected = {
        "type": "member.role_changed",
        "user_id": member.pk,
        "name": member.display_name,
        "role": "admin",
    }
    assert await member_socket.receive_json_from(timeout=TIMEOUT) == expected
    assert await viewer_socket.receive_json_from(timeout=TIMEOUT) == expected


async def test_a_refused_role_change_announces_nothing(sockets, owner, member):
    member_socket = await connect(sockets, member)

    with pytest.raises(ValidationError):
        await change_role(owner, owner, Role.MEMBER)

    assert await member_socket.receive_nothing(timeout=0.3)


async def test_a_role_change_rolled_back_with_its_transaction_announces_nothing(
    sockets, owner, member
):
    member_socket = await connect(sockets, member)

    @database_sync_to_async
    def change_role_then_fail() -> None:
        with contextlib.suppress(RuntimeError), transaction.atomic():
            services.membership_change_role(
                actor=Membership.objects.get(user=owner),
                membership_id=Membership.objects.get(user=member).pk,
                role=Role.ADMIN,
            )
            raise RuntimeError("a later step of the same request failed")

    await change_role_then_fail()

    assert await member_socket.receive_nothing(timeout=0.3)
    role = await database_sync_to_async(lambda: Membership.objects.get(user=member).role)()
    assert role == Role.MEMBER


async def test_members_receive_a_new_member_joining(sockets, owner, member, workspace):
    socket = await connect(sockets, member)

    @database_sync_to_async
    def invite_and_accept() -> User:
        _, token = services.invitation_create(
            actor=Membership.objects.get(user=owner, workspace=workspace),
            email="nina@example.com",
            role=Role.VIEWER,
        )
        nina = factories.user_create(email="nina@example.com", name="Nina")
        services.invitation_accept(token=token, user=nina)
        return nina

    nina = await invite_and_accept()

    assert await socket.receive_json_from(timeout=TIMEOUT) == {
        "type": "member.joined",
        "user_id": nina.pk,
        "name": "Nina",
        "role": "viewer",
    }


FORBIDDEN = {"type": "error", "code": "forbidden", "message": "You no longer have access."}


async def test_a_removed_member_is_told_then_their_socket_closes(sockets, owner, member, viewer):
    member_socket = await connect(sockets, member)
    viewer_socket = await connect(sockets, viewer)

    await remove(owner, member)

    expected = {"type": "member.removed", "user_id": member.pk, "name": member.display_name}
    assert await member_socket.receive_json_from(timeout=TIMEOUT) == FORBIDDEN
    assert await member_socket.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": CLOSE_NOT_A_MEMBER,
    }
    assert await viewer_socket.receive_json_from(timeout=TIMEOUT) == expected
    await viewer_socket.send_json_to({"type": "ping"})
    assert await viewer_socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}


async def test_a_member_who_leaves_is_told_then_their_socket_closes(sockets, member, owner):
    member_socket = await connect(sockets, member)
    owner_socket = await connect(sockets, owner)

    await remove(member, member)

    assert await member_socket.receive_json_from(timeout=TIMEOUT) == FORBIDDEN
    assert (await member_socket.receive_output(timeout=TIMEOUT))["code"] == CLOSE_NOT_A_MEMBER
    assert (await owner_socket.receive_json_from(timeout=TIMEOUT))["user_id"] == member.pk


async def test_a_member_removed_while_connected_is_refused_at_their_next_message(sockets, member):
    socket = await connect(sockets, member)
    # Removed without an event reaching the socket (say, the broadcast was lost).
    await database_sync_to_async(Membership.objects.filter(user=member).delete)()

    await socket.send_json_to({"type": "ping"})

    assert await socket.receive_json_from(timeout=TIMEOUT) == FORBIDDEN
    assert await socket.receive_output(timeout=TIMEOUT) == {
        "type": "websocket.close",
        "code": CLOSE_NOT_A_MEMBER,
    }


# Bad frames ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame", ["{not json", "[1, 2]", '"ping"', '{"type": "shout"}', "null", "{}"]
)
async def test_a_malformed_frame_gets_an_error_and_disturbs_no_one(sockets, member, viewer, frame):
    member_socket = await connect(sockets, member)
    viewer_socket = await connect(sockets, viewer)

    await member_socket.send_to(text_data=frame)

    answer = await member_socket.receive_json_from(timeout=TIMEOUT)
    assert (answer["type"], answer["code"]) == ("error", "bad_frame")
    assert await viewer_socket.receive_nothing(timeout=0.2)
    for socket in (member_socket, viewer_socket):
        await socket.send_json_to({"type": "ping"})
        assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}


async def test_a_binary_frame_gets_an_error_and_keeps_the_socket_open(member):
    # Not through the ``sockets`` fixture: if the consumer crashes, its disconnect re-raises.
    socket, connected, _ = await open_socket(member)
    assert connected

    await socket.send_to(bytes_data=b"\x00\x01")

    assert await socket.receive_json_from(timeout=TIMEOUT) == {
        "type": "error",
        "code": "bad_frame",
        "message": "Frames are JSON text, not binary.",
    }
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
    await close(socket)


async def test_an_oversized_frame_is_refused_unparsed_and_keeps_the_socket_open(member):
    from qweb.consumers import MAX_FRAME_CHARS

    socket, connected, _ = await open_socket(member)
    assert connected

    await socket.send_to(text_data='{"type": "ping", "pad": "' + "x" * MAX_FRAME_CHARS + '"}')

    answer = await socket.receive_json_from(timeout=TIMEOUT)
    assert answer["type"] == "error" and answer["code"] == "too_large"
    await socket.send_json_to({"type": "ping"})
    assert await socket.receive_json_from(timeout=TIMEOUT) == {"type": "pong"}
    await close(socket)


# Losing access while connected ---------------------------------------------------------------


@pytest.mark.parametrize("how", REVOCATIONS)
async def test_a_workspace_socket_closes_when_access_goes_without_a_frame(
    sockets, owner, member, workspace, how
):
    socket = await connect(sockets, member)

    committed = await revoke_access(how, member, workspace)

    await expect_revoked(socket, committed)
    await expect_nothing_more(
        socket,
        (
            workspace_group(workspace.pk),
            {"type": "member.joined", "user_id": owner.pk, "name": "x", "role": "viewer"},
        ),
    )
