"""Writes for conversations: every rule of chat lives here, once.

The web views, the websocket consumer and the commands all call these. Each takes the
actor's ``membership`` (read fresh by the caller for this request or frame) and checks the
role itself, so no entry point can forget it.

The package: ``conversations`` (start, rename, delete, pins, and the shared rules),
``turns`` (ask, edit and ask again, regenerate or retry, stop) and ``answers`` (an ended
job's text and tokens). Everything callers use is imported from here.
"""

from __future__ import annotations

from apps.chat.services.answers import answer_finish
from apps.chat.services.conversations import (
    ANSWER_PENDING,
    MAX_PINS,
    MAX_TITLE,
    NO_QUESTION,
    NO_SUCH_ANSWER,
    NO_SUCH_QUESTION,
    UNTITLED,
    conversation_create,
    conversation_delete,
    conversation_pins_set,
    conversation_rename,
)
from apps.chat.services.turns import (
    answer_regenerate,
    conversation_post_message,
    message_created_event,
    message_finished_event,
    message_stop,
    question_edit,
)
from qweb.ratelimit import RateLimited

__all__ = [
    "ANSWER_PENDING",
    "MAX_PINS",
    "MAX_TITLE",
    "NO_QUESTION",
    "NO_SUCH_ANSWER",
    "NO_SUCH_QUESTION",
    "UNTITLED",
    "RateLimited",
    "answer_finish",
    "answer_regenerate",
    "conversation_create",
    "conversation_delete",
    "conversation_pins_set",
    "conversation_post_message",
    "conversation_rename",
    "message_created_event",
    "message_finished_event",
    "message_stop",
    "question_edit",
]
