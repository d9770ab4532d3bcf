"""Live conversation: questions and answers as they happen, for everyone watching.

Thin by design: it authenticates, authorizes every incoming frame (the membership is read
again, so someone removed a moment ago is refused), reads the frame through its action's form
(`apps.chat.forms`, the same the views use), calls the chat services and forwards events.
Answers stream as their generation job's events: for each answer being written the consumer
joins the job's group, then reads the job's snapshot (checkpoint + live tail) and sends it,
then forwards only deltas after it — so a socket that connects late, or again after a drop
or a reload, gets the text so far and everything after, without gap or repeat.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from apps.chat import services
from apps.chat.events import UsageToday, conversation_group
from apps.chat.forms import ACTION_FORMS
from apps.chat.models import Conversation, Message
from apps.chat.selectors import (
    conversation_access,
    conversation_pending_answers,
    conversation_recent_message_ids,
    message_find,
    usage_today,
)
from apps.generation.consumers import JobFollowerMixin
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action, can
from qweb.consumers import CLOSE_GONE, ActionConsumer, PresenceMixin

RECENT_MESSAGES = 100


@database_sync_to_async
def _ready_state(conversation_id: int) -> tuple[list[tuple[int, int]], list[int]]:
    """Answers being written, and the ids of the latest messages (for a page catching up)."""
    return (
        conversation_pending_answers(conversation_id=conversation_id),
        conversation_recent_message_ids(conversation_id=conversation_id, limit=RECENT_MESSAGES),
    )


@database_sync_to_async
def _finished(message_id: int, user_id: int | None) -> list[dict[str, Any]]:
    """``message.finished``, then for the one who asked, if it cost tokens, theirs today."""
    message = message_find(message_id=message_id)
    if message is None:
        return []
    frames: list[dict[str, Any]] = [dict(services.message_finished_event(message))]
    job = message.job
    cost = message.prompt_tokens + message.completion_tokens
    if cost and job is not None and user_id is not None and job.created_by_id == user_id:
        tokens = usage_today(user_id=user_id, workspace_id=message.conversation.workspace_id)
        frames.append(dict(UsageToday(type="usage.today", tokens=tokens)))
    return frames


class ConversationConsumer(PresenceMixin, JobFollowerMixin, ActionConsumer):
    owner_key = "message_id"
    actions = frozenset(ACTION_FORMS)

    def read_route(self, kwargs: dict[str, Any]) -> None:
        self.conversation_id = int(kwargs["conversation_id"])

    def load_target(self) -> tuple[Conversation, Membership] | None:
        assert self.user_id is not None
        return conversation_access(user_id=self.user_id, conversation_id=self.conversation_id)

    def group_of(self, target: tuple[Conversation, Membership]) -> str:
        return conversation_group(self.conversation_id)

    async def ready(self, target: tuple[Conversation, Membership]) -> None:
        pending, recent = await _ready_state(self.conversation_id)
        await self.send_json(
            {
                "type": "conversation.ready",
                "conversation_id": self.conversation_id,
                "can_post": can(target[1].role, Action.CONTRIBUTE),
                "pending": [message_id for message_id, _ in pending],
                "recent": recent,
            }
        )
        for message_id, job_id in pending:
            await self.follow_job(message_id, job_id)

    async def access_kept(self, target: tuple[Conversation, Membership]) -> None:
        await self.send_json(
            {"type": "access.changed", "can_post": can(target[1].role, Action.CONTRIBUTE)}
        )

    async def leave(self) -> None:
        await self.presence_exit()
        await self.unfollow_all()

    def perform(self, action: str, target: Any, content: dict[str, Any]) -> None:
        conversation, membership = target
        # Every action here writes: a viewer is refused before the frame is read.
        ensure_can(membership, Action.CONTRIBUTE)
        data = ACTION_FORMS[action].from_frame(content).cleaned()
        if action == "post":
            services.conversation_post_message(
                membership=membership,
                conversation=conversation,
                text=data["text"],
                pinned=data["pinned"],
                parent_id=data["parent_id"],
            )
        elif action == "stop":
            services.message_stop(
                membership=membership, conversation=conversation, message_id=data["message_id"]
            )
        elif action == "pins":
            services.conversation_pins_set(
                membership=membership, conversation=conversation, paths=data["pinned"]
            )
        elif action == "regenerate":
            services.answer_regenerate(
                membership=membership, conversation=conversation, message_id=data["message_id"]
            )
        elif action == "edit":
            services.question_edit(
                membership=membership,
                conversation=conversation,
                message_id=data["message_id"],
                text=data["text"],
            )

    # ------------------------------------------------------------------ answers streaming

    async def job_ended(self, owner_id: int) -> None:
        for frame in await _finished(owner_id, self.user_id):
            await self.send_json(frame)

    # ------------------------------------------------------------------ conversation events

    async def message_created(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
        if event["role"] == Message.Role.ASSISTANT and event["job_id"]:
            await self.follow_job(event["message_id"], event["job_id"])

    async def conversation_renamed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def conversation_pins_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def conversation_deleted(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
        await self.close(code=CLOSE_GONE)
