"""Live conversation: questions and answers as they happen, for everyone watching.

Thin by design: it authenticates, authorizes every incoming frame (the membership is read
again, so someone removed a moment ago is refused), calls the chat services and forwards
events. Answers stream as their generation job's events: for each answer being written the
consumer joins the job's group, then reads the job's snapshot (checkpoint + live tail) and
sends it, then forwards only deltas after it — so a socket that connects late, or again
after a drop or a reload, gets the text so far and everything after, without gap or repeat.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied, ValidationError

from apps.chat import services
from apps.chat.events import MessageFinished, conversation_group
from apps.chat.models import Conversation, Message
from apps.chat.selectors import conversation_for_user, conversation_pending_answers
from apps.generation.events import StreamPosition, job_group
from apps.generation.models import GenerationJob
from apps.generation.stream import job_snapshot
from apps.workspaces.models import Membership
from apps.workspaces.roles import Action, can
from qweb.consumers import JsonConsumer
from qweb.ratelimit import RateLimited

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_GONE = 4404
RECENT_MESSAGES = 100


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


@database_sync_to_async
def _authorize(user: Any, conversation_id: int) -> tuple[int, bool] | None:
    found = conversation_for_user(user=user, conversation_id=conversation_id)
    if found is None:
        return None
    conversation, membership = found
    return conversation.workspace_id, can(membership.role, Action.CONTRIBUTE)


@database_sync_to_async
def _membership(user_id: int, conversation_id: int) -> tuple[Conversation, Membership] | None:
    conversation = Conversation.objects.select_related("repository").filter(pk=conversation_id)
    found = conversation.first()
    if found is None:
        return None
    membership = Membership.objects.filter(workspace_id=found.workspace_id, user_id=user_id).first()
    return None if membership is None else (found, membership)


@database_sync_to_async
def _ready_state(conversation_id: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Answers being written, and the ids of the latest messages (for a page catching up)."""
    recent = Message.objects.filter(conversation_id=conversation_id).order_by("-pk")
    ids = sorted(recent.values_list("pk", flat=True)[:RECENT_MESSAGES])
    return conversation_pending_answers(conversation_id=conversation_id), ids


@database_sync_to_async
def _snapshot(job_id: int) -> dict[str, Any] | None:
    job = GenerationJob.objects.filter(pk=job_id).first()
    return None if job is None else dict(job_snapshot(job))


@database_sync_to_async
def _finished(message_id: int) -> MessageFinished | None:
    message = Message.objects.filter(pk=message_id).first()
    return None if message is None else services.message_finished_event(message)


def _act(action: str, conversation: Conversation, membership: Membership, content: dict) -> None:
    if action == "post":
        services.conversation_post_message(
            membership=membership,
            conversation=conversation,
            text=content.get("text"),
            pinned=content.get("pinned"),
        )
    elif action == "stop":
        services.message_stop(
            membership=membership, conversation=conversation, message_id=content.get("message_id")
        )
    elif action == "pins":
        services.conversation_pins_set(
            membership=membership, conversation=conversation, paths=content.get("pinned")
        )
    elif action == "ask_again":
        message_id = content.get("message_id")
        services.conversation_ask_again(
            membership=membership,
            conversation=conversation,
            message_id=message_id if isinstance(message_id, int) else 0,
        )


# Posting builds the turn's prompt (reads git, counts tokens): off the shared database
# thread, so one member's long prompt does not hold up snapshots for everyone else.
_act_async = database_sync_to_async(_act, thread_sensitive=False)

ACTIONS = {"post", "stop", "pins", "ask_again"}


class ConversationConsumer(JsonConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.conversation_id = int(self.scope["url_route"]["kwargs"]["conversation_id"])
        found = await _authorize(user, self.conversation_id)
        if found is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.user_id = user.pk
        self.follows: dict[int, tuple[int, StreamPosition]] = {}
        self.group = conversation_group(self.conversation_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        pending, recent = await _ready_state(self.conversation_id)
        await self.send_json(
            {
                "type": "conversation.ready",
                "conversation_id": self.conversation_id,
                "can_post": found[1],
                "pending": [message_id for message_id, _ in pending],
                "recent": recent,
            }
        )
        for message_id, job_id in pending:
            await self._follow(message_id, job_id)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
        for job_id in list(getattr(self, "follows", {})):
            await self.channel_layer.group_discard(job_group(job_id), self.channel_name)

    # ------------------------------------------------------------------ from the browser

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        found = await _membership(self.user_id, self.conversation_id)
        if found is None:
            await self.send_json(
                {"type": "error", "code": "forbidden", "message": "You no longer have access."}
            )
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self._error("bad_frame", "Frames are JSON objects with a type.")
            return
        action = content["type"]
        if action == "ping":
            await self.send_json({"type": "pong"})
            return
        if action not in ACTIONS:
            await self._error("bad_frame", f"Unknown event {action[:40]!r}.")
            return
        conversation, membership = found
        try:
            await _act_async(action, conversation, membership, content)
        except RateLimited as error:
            await self._error("rate_limited", _error_text(error), retry_after=error.retry_after)
        except PermissionDenied as error:
            await self._error("forbidden", str(error) or "You cannot do this.")
        except ValidationError as error:
            await self._error("invalid", _error_text(error), action=action)

    async def _error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **extra})

    # ------------------------------------------------------------------ answers streaming

    async def _follow(self, message_id: int, job_id: int) -> None:
        if job_id in self.follows:
            return
        # Join before reading the snapshot: whatever is sent after the read arrives here.
        await self.channel_layer.group_add(job_group(job_id), self.channel_name)
        snapshot = await _snapshot(job_id)
        if snapshot is None:
            await self.channel_layer.group_discard(job_group(job_id), self.channel_name)
            return
        self.follows[job_id] = (message_id, StreamPosition(snapshot["attempt"], snapshot["seq"]))
        await self.send_json({**snapshot, "message_id": message_id})
        if snapshot["state"] in {"done", "failed", "cancelled"}:
            await self._unfollow(job_id)

    async def _unfollow(self, job_id: int) -> None:
        message_id, _ = self.follows.pop(job_id)
        await self.channel_layer.group_discard(job_group(job_id), self.channel_name)
        finished = await _finished(message_id)
        if finished is not None:
            await self.send_json(finished)

    async def job_delta(self, event: dict[str, Any]) -> None:
        follow = self.follows.get(event["job_id"])
        if follow is None or not follow[1].advance(event):
            return
        await self.send_json({**event, "message_id": follow[0]})
        if event["type"] == "job.finished":
            await self._unfollow(event["job_id"])

    job_rewind = job_delta
    job_finished = job_delta

    # ------------------------------------------------------------------ conversation events

    async def message_created(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
        if event["role"] == Message.Role.ASSISTANT and event["job_id"]:
            await self._follow(event["message_id"], event["job_id"])

    async def conversation_renamed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def conversation_pins_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def conversation_deleted(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
        await self.close(code=CLOSE_GONE)
