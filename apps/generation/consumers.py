"""Follow a generation job live: a snapshot first, then every delta, with no gap."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from apps.generation.events import StreamPosition, job_group
from apps.generation.models import GenerationJob
from apps.generation.selectors import job_for_user
from apps.generation.services import job_cancel
from apps.generation.stream import job_snapshot
from qweb.consumers import JsonConsumer

CLOSE_NOT_ALLOWED = 4403
FINISHED_STATES = {"done", "failed", "cancelled"}


# Off the shared database thread: when an answer starts, every socket watching it reads a
# snapshot at once, and one after another they would hold up the live deltas.
def _read_snapshot(job_id: int) -> dict[str, Any] | None:
    job = GenerationJob.objects.filter(pk=job_id).first()
    return None if job is None else dict(job_snapshot(job))


_job_snapshot = database_sync_to_async(_read_snapshot, thread_sensitive=False)


class JobFollowerMixin:
    """For consumers that stream jobs on behalf of something else (a chat answer, a proposal).

    ``follow_job(owner_id, job_id)`` joins the job's group, then sends its snapshot, then the
    deltas after it — each tagged ``{owner_key: owner_id}``; when the job ends,
    ``job_ended(owner_id)`` runs (e.g. to send the stored, rendered result).
    """

    owner_key = "owner_id"
    channel_layer: Any
    channel_name: str
    send_json: Any  # the consumer's own

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
        if snapshot["state"] in FINISHED_STATES:
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


@database_sync_to_async
def _authorize(user: Any, job_id: int) -> tuple[int, bool] | None:
    found = job_for_user(user=user, job_id=job_id)
    return None if found is None else (found[0].pk, found[1])


@database_sync_to_async
def _snapshot(user: Any, job_id: int) -> dict[str, Any] | None:
    found = job_for_user(user=user, job_id=job_id)
    return None if found is None else dict(job_snapshot(found[0]))


@database_sync_to_async
def _cancel(user: Any, job_id: int) -> bool:
    found = job_for_user(user=user, job_id=job_id)
    if found is None or not found[1]:
        return False
    job_cancel(job_id=job_id)
    return True


class JobConsumer(JsonConsumer):
    group: str | None = None

    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        if self.user is None or await _authorize(self.user, self.job_id) is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        # Join before reading the snapshot: whatever is sent after the read arrives here.
        self.group = job_group(self.job_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        snapshot = await _snapshot(self.user, self.job_id)
        if snapshot is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.position = StreamPosition(snapshot["attempt"], snapshot["seq"])
        await self.send_json(snapshot)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "cancel":
            await self.send_json({"type": "error", "message": "Unknown event."})
            return
        if not await _cancel(self.user, self.job_id):
            await self.send_json({"type": "error", "message": "You cannot stop this job."})

    async def job_delta(self, event: dict[str, Any]) -> None:
        if self.position.advance(event):
            await self.send_json(event)

    job_rewind = job_delta
    job_finished = job_delta
