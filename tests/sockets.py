"""Websocket helpers for consumer tests: authenticated communicators, cleanup, waiting."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from qweb.asgi import application

ALLOWED_ORIGIN = b"http://localhost"
TIMEOUT = 5


@database_sync_to_async
def session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def open_path(
    user, path: str, origin: bytes = ALLOWED_ORIGIN
) -> tuple[WebsocketCommunicator, bool, object]:
    """A communicator for ``path`` as ``user`` (anonymous when None): (it, connected, code)."""
    headers = [(b"origin", origin)]
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
