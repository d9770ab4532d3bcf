"""Follow a generation job live: a snapshot first, then every delta, with no gap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied

from apps.generation.events import StreamPosition, job_group
from apps.generation.models import GenerationJob
from apps.generation.selectors import job_for_user
from apps.generation.services import job_cancel
from apps.generation.stream import job_snapshot_find
from qweb.consumers import CLOSE_GONE, ActionConsumer
from qweb.leasing import FINISHED


# Off the shared database thread: when an answer starts, every socket watching it reads a
# snapshot at once, and one after another they would hold up the live deltas.
def _read_snapshot(job_id: int) -> dict[str, Any] | None:
    snapshot = job_snapshot_find(job_id)
    return None if snapshot is None else dict(snapshot)


_job_snapshot = database_sync_to_async(_read_snapshot, thread_sensitive=False)


class JobFollowerMixin:
    """For consumers that stream jobs on behalf of something else (a chat answer, a proposal).

    ``follow_job(owner_id, job_id)`` joins the job's group, then sends its snapshot, then the
    deltas after it — each tagged ``{owner_key: owner_id}``; when the job ends,
    ``job_ended(owner_id)`` runs (e.g. to send the stored, rendered result).
    """

    owner_key = "owner_id"
    # Provided by the consumer class this is mixed into.
    channel_layer: Any  # channels declares no type for a layer's group_add/group_discard
    channel_name: str
    send_json: Callable[[dict[str, Any]], Awaitable[None]]

    async def job_ended(self, owner_id: int) -> None:
        """Called once per followed job when it ends."""

    @property
    def follows(self) -> dict[int, tuple[int, StreamPosition]]:
        if not hasattr(self, "_follows"):
            self._follows: dict[int, tuple[int, StreamPosition]] = {}
        return self._follows

    async def follow_job(self, owner_id: int, job_id: int) -> None:
        if job_id in self.follows:
            return
        # Join before reading the snapshot: whatever is sent after the read arrives here.
        await self.channel_layer.group_add(job_group(job_id), self.channel_name)
        snapshot = await _job_snapshot(job_id)
        if snapshot is None:
            await self.channel_layer.group_discard(job_group(job_id), self.channel_name)
            return
        self.follows[job_id] = (owner_id, StreamPosition(snapshot["attempt"], snapshot["seq"]))
        await self.send_json({**snapshot, self.owner_key: owner_id})
        if snapshot["state"] in FINISHED:
            await self._unfollow(job_id)

    async def _unfollow(self, job_id: int) -> None:
        owner_id, _ = self.follows.pop(job_id)
        await self.channel_layer.group_discard(job_group(job_id), self.channel_name)
        await self.job_ended(owner_id)

    async def unfollow_all(self) -> None:
        for job_id in list(self.follows):
            self.follows.pop(job_id)
            await self.channel_layer.group_discard(job_group(job_id), self.channel_name)

    async def job_delta(self, event: dict[str, Any]) -> None:
        follow = self.follows.get(event["job_id"])
        if follow is None or not follow[1].advance(event):
            return
        await self.send_json({**event, self.owner_key: follow[0]})
        if event["type"] == "job.finished":
            await self._unfollow(event["job_id"])

    job_rewind = job_delta
    job_finished = job_delta


class JobConsumer(ActionConsumer):
    """One job followed directly (``/ws/jobs/<id>/``): its snapshot, then every delta.

    Watching needs the current membership of the job's workspace; stopping it, a member.
    """

    actions = frozenset({"cancel"})

    def read_route(self, kwargs: dict[str, Any]) -> None:
        self.job_id = int(kwargs["job_id"])

    def load_target(self) -> tuple[GenerationJob, bool] | None:
        return job_for_user(user_id=self.user_id, job_id=self.job_id)

    def group_of(self, target: tuple[GenerationJob, bool]) -> str:
        # Joined before the snapshot is read: whatever is sent after the read arrives here.
        return job_group(self.job_id)

    async def ready(self, target: tuple[GenerationJob, bool]) -> None:
        snapshot = await _job_snapshot(self.job_id)
        if snapshot is None:
            await self.close(code=CLOSE_GONE)
            return
        self.position = StreamPosition(snapshot["attempt"], snapshot["seq"])
        await self.send_json(snapshot)

    def perform(self, action: str, target: tuple[GenerationJob, bool], content: dict) -> None:
        _job, may_cancel = target
        if not may_cancel:
            raise PermissionDenied("You cannot stop this job.")
        job_cancel(job_id=self.job_id)

    async def job_delta(self, event: dict[str, Any]) -> None:
        if self.position.advance(event):
            await self.send_json(event)

    job_rewind = job_delta
    job_finished = job_delta
