"""Websocket helpers for consumer tests: authenticated communicators, cleanup, waiting."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import Client

from qweb.asgi import application

# Browsers send both: the page's origin, and the host they connect to (checked together).
ALLOWED_ORIGIN = b"http://localhost"
HOST = b"localhost"
TIMEOUT = 5


@database_sync_to_async
def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_path(
    user, path: str, origin: bytes | None = ALLOWED_ORIGIN, host: bytes = HOST
) -> tuple[WebsocketCommunicator, bool, object]:
    """A communicator for ``path`` as ``user`` (anonymous when None): (it, connected, code)."""
    headers = [(b"host", host)]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        headers.append((b"cookie", await session_cookie(user)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=TIMEOUT)
    return communicator, connected, code


async def close(communicator: WebsocketCommunicator) -> None:
    # A consumer may sit in a read after the socket closes; the communicator cancels it
    # once this short wait is over.
    await communicator.disconnect(timeout=0.1)


@pytest.fixture
async def sockets() -> AsyncIterator[list[WebsocketCommunicator]]:
    """Communicators opened by a test, closed at its end."""
    opened: list[WebsocketCommunicator] = []
    yield opened
    for communicator in opened:
        await close(communicator)


async def receive_until(
    socket: WebsocketCommunicator, done: Callable[[dict], bool], timeout: float = TIMEOUT
) -> list[dict]:
    """Frames up to and including the first one ``done`` accepts."""
    frames = []
    while True:
        frames.append(await socket.receive_json_from(timeout=timeout))
        if done(frames[-1]):
            return frames


# Losing access while connected -------------------------------------------------------------

FORBIDDEN = {"type": "error", "code": "forbidden", "message": "You no longer have access."}
# The ways a member loses a workspace while a page of it is open.
REVOCATIONS = ["removed", "deactivated", "workspace_deleted"]


@database_sync_to_async
def revoke_access(how: str, user, workspace) -> float:
    """Take ``user``'s access to ``workspace`` away the way ``how`` says, and commit; returns
    the moment it committed (``time.monotonic()``), which deadlines are measured from."""
    with transaction.atomic():
        # Registered first, so it runs at commit before the notices are sent.
        committed: list[float] = []
        transaction.on_commit(lambda: committed.append(time.monotonic()))
        _revoke(how, user, workspace)
    return committed[0]


def _revoke(how: str, user, workspace) -> None:
    from apps.accounts.models import User
    from apps.workspaces import services
    from apps.workspaces.models import Membership
    from apps.workspaces.roles import Role

    owner = (
        Membership.objects.select_related("workspace", "user")
        .filter(workspace=workspace, role=Role.OWNER)
        .exclude(user=user)
        .first()
    )
    if how == "removed":
        target = Membership.objects.get(workspace=workspace, user=user)
        services.membership_remove(actor=owner, membership_id=target.pk)
    elif how == "deactivated":
        person = User.objects.get(pk=user.pk)
        person.is_active = False
        person.save(update_fields=["is_active"])
    elif how == "workspace_deleted":
        services.workspace_delete(actor=owner, confirm_slug=workspace.slug)
    else:
        raise AssertionError(how)


@database_sync_to_async
def change_role(actor, target, role) -> None:
    """``actor`` gives ``target`` another role in the workspace they share, and commits."""
    from apps.workspaces import services
    from apps.workspaces.models import Membership

    acting = Membership.objects.select_related("workspace").get(user=actor)
    services.membership_change_role(
        actor=acting,
        membership_id=Membership.objects.get(user=target, workspace=acting.workspace).pk,
        role=role,
    )


async def expect_revoked(socket: WebsocketCommunicator, since: float) -> None:
    """The socket says access is gone and closes 4403 within a second of ``since``."""
    first = await socket.receive_json_from(timeout=TIMEOUT)
    assert first == FORBIDDEN
    closed = await socket.receive_output(timeout=TIMEOUT)
    assert closed == {"type": "websocket.close", "code": 4403}
    assert time.monotonic() - since < 1.0


async def expect_nothing_more(socket: WebsocketCommunicator, *sends: tuple[str, dict]) -> None:
    """After ``sends`` reach the groups the socket was in, nothing reaches its browser."""
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    for group, event in sends:
        await layer.group_send(group, event)
    assert await socket.receive_nothing(timeout=0.5)


async def connect_ready(sockets, user, path: str, ready_type: str):
    """An open socket (closed at the test's end) and its first frame, of type ``ready_type``."""
    communicator, connected, detail = await open_path(user, path)
    assert connected, f"refused with {detail}"
    sockets.append(communicator)
    ready = await communicator.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == ready_type
    return communicator, ready
