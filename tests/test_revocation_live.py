"""Revocation across processes: sockets held by a Daphne server process close when another
process (this one) removes the member, the notice travelling through Redis.

Each socket kind is open in the server at once — workspace, job, conversation, refactor —
from a real websocket client (autobahn, which comes with Daphne). The member is removed
here; every socket must get the error and close 4403 within a second, and nothing sent to
their groups afterwards may reach the client.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from tests.live import live_daphne
from tests.sockets import FORBIDDEN, revoke_access, session_cookie

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # Across processes needs the Redis layer; CI always has it (QWEB_REQUIRE_SERVICES=1).
    pytest.mark.skipif(
        not settings.REDIS_URL and os.environ.get("QWEB_REQUIRE_SERVICES") != "1",
        reason="needs REDIS_URL (the in-memory layer cannot reach another process)",
    ),
]


@pytest.fixture
def server(transactional_db, tmp_path):
    env = {
        "REDIS_URL": settings.REDIS_URL,
        "QWEB_ALLOWED_HOSTS": "127.0.0.1",
        "QWEB_EMBEDDED_WORKER": "false",
    }
    with live_daphne(env, tmp_path / "daphne.log") as url:
        yield int(url.rsplit(":", 1)[1])


class Client:
    """One websocket of a real client: every frame it got (with its time), and its close."""

    def __init__(self) -> None:
        self.frames: list[tuple[float, dict]] = []
        self.closed: asyncio.Future[tuple[float, int | None]] | None = None

    async def connect(self, port: int, path: str, cookie: str) -> None:
        from websockets.asyncio.client import connect

        loop = asyncio.get_running_loop()
        self.closed = loop.create_future()
        self.socket = await connect(
            f"ws://127.0.0.1:{port}{path}",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": cookie},
            open_timeout=10,
        )
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in self.socket:
                self.frames.append((time.monotonic(), json.loads(message)))
        except ConnectionClosed:
            pass
        assert self.closed is not None
        self.closed.set_result((time.monotonic(), self.socket.close_code))

    async def first_frame(self) -> dict:
        deadline = time.monotonic() + 10
        while not self.frames:
            assert time.monotonic() < deadline, "no frame"
            await asyncio.sleep(0.02)
        return self.frames[0][1]

    async def close(self) -> None:
        await self.socket.close()
        await self.reader


@database_sync_to_async
def make_pages(workspace, owner, member):
    """A job, a conversation and a refactor session of the workspace (rows only: opening
    their sockets reads nothing from git)."""
    from apps.chat.events import conversation_group
    from apps.chat.models import Conversation
    from apps.generation.events import job_group
    from apps.generation.services import job_submit
    from apps.refactors.events import session_group
    from apps.refactors.models import RefactorSession
    from apps.repos.models import Repository
    from apps.workspaces.events import workspace_group

    repository = Repository.objects.create(
        workspace=workspace, name="Shop", slug="shop", source="upload", store_name=uuid.uuid4().hex
    )
    conversation = Conversation.objects.create(
        workspace=workspace, repository=repository, ref="main", title="Taxes", created_by=owner
    )
    session = RefactorSession.objects.create(
        workspace=workspace,
        repository=repository,
        title="Rename",
        instruction="Rename it",
        base_branch="main",
        base_commit="0" * 40,
        created_by=owner,
    )
    job = job_submit(
        messages=[{"role": "user", "content": "Hi"}], workspace_id=workspace.pk, user_id=member.pk
    )
    pages = {
        "workspace": (f"/ws/w/{workspace.slug}/", workspace_group(workspace.pk)),
        "job": (f"/ws/jobs/{job.pk}/", job_group(job.pk)),
        "conversation": (
            f"/ws/conversations/{conversation.pk}/",
            conversation_group(conversation.pk),
        ),
        "refactor": (f"/ws/refactors/{session.pk}/", session_group(session.pk)),
    }
    return pages, job.pk


@pytest.mark.parametrize("how", ["removed", "deactivated"])
async def test_sockets_in_another_process_close_when_access_goes(
    server, workspace, owner, member, how
):
    pages, job_id = await make_pages(workspace, owner, member)
    cookie = (await session_cookie(member)).decode()
    clients = {kind: Client() for kind in pages}
    for kind, (path, _group) in pages.items():
        await clients[kind].connect(server, path, cookie)
    try:
        await revoked_for_good(clients, pages, job_id, member, workspace, how)
    finally:
        for client in clients.values():
            await client.close()


async def revoked_for_good(clients, pages, job_id, member, workspace, how):
    # Each page is live before the change: its first frame (ready or snapshot) arrived.
    assert (await clients["job"].first_frame())["type"] == "job.snapshot"
    assert (await clients["conversation"].first_frame())["type"] == "conversation.ready"
    assert (await clients["refactor"].first_frame())["type"] == "session.ready"
    before = {kind: len(client.frames) for kind, client in clients.items()}

    changed = await revoke_access(how, member, workspace)

    for kind, client in clients.items():
        closed_at, code = await asyncio.wait_for(client.closed, 5)
        assert code == 4403, kind
        assert closed_at - changed < 1.0, f"{kind} closed after {closed_at - changed:.2f} s"
        assert [frame for _t, frame in client.frames[before[kind] :]] == [FORBIDDEN], kind

    layer = get_channel_layer()
    for _path, group in pages.values():
        await layer.group_send(
            group, {"type": "job.delta", "job_id": job_id, "attempt": 0, "seq": 1, "text": "x"}
        )
    await asyncio.sleep(0.5)
    for kind, client in clients.items():
        assert len(client.frames) == before[kind] + 1, kind
