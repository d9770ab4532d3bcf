"""Typed websocket events of a conversation, sent to the group ``conversation.<id>``.

Answers stream as the generation job's own events (``job.snapshot``/``delta``/``rewind``/
``finished``, see ``apps.generation.events``), forwarded by the conversation consumer with
the ``message_id`` they belong to. The events here say what changed in the conversation.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


def conversation_group(conversation_id: int) -> str:
    return f"conversation.{conversation_id}"


class MessageCreated(TypedDict):
    """A question was asked (``role`` user) or an answer started (``role`` assistant).

    ``parent_id`` is the message it follows (see ``Message.parent``): a page showing that
    message's other child sees a new version, a page showing it last sees the next message.
    """

    type: Literal["message.created"]
    conversation_id: int
    message_id: int
    parent_id: int | None
    role: str
    author: str
    html: str
    state: str
    job_id: int | None
    context: dict[str, Any]


class MessageFinished(TypedDict):
    """An answer ended; ``html`` is the server's sanitized rendering of the stored text."""

    type: Literal["message.finished"]
    conversation_id: int
    message_id: int
    state: str
    html: str
    error: str
    prompt_tokens: int
    completion_tokens: int


class ConversationRenamed(TypedDict):
    type: Literal["conversation.renamed"]
    conversation_id: int
    title: str


class ConversationPinsChanged(TypedDict):
    type: Literal["conversation.pins_changed"]
    conversation_id: int
    pinned: list[str]


class ConversationDeleted(TypedDict):
    type: Literal["conversation.deleted"]
    conversation_id: int


class UsageToday(TypedDict):
    """Sent to one socket only, when an answer its user asked for ends: their tokens today."""

    type: Literal["usage.today"]
    tokens: int
