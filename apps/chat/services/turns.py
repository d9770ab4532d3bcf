"""Turns: asking (a question, an edit of one), answering again, stopping an answer.

A conversation is a tree of versions (``Message.parent``); each turn's history is the path
down to the answer its question follows, so the model sees what the asker sees.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.chat.events import (
    ConversationRenamed,
    MessageCreated,
    MessageFinished,
    conversation_group,
)
from apps.chat.models import Conversation, Message
from apps.chat.prompt import mentioned_paths
from apps.chat.selectors import conversation_latest_answer, message_path, usage_today
from apps.chat.services.conversations import (
    ANSWER_PENDING,
    MAX_PINS,
    NO_QUESTION,
    NO_SUCH_ANSWER,
    NO_SUCH_QUESTION,
    UNTITLED,
    _ensure_member_of,
    _ready_manifest,
    _title_from_question,
)
from apps.generation.services import job_cancel, job_submit
from apps.repos.turn import HistoryTurn, PromptError, TurnPrompt, turn_prompt_build
from apps.workspaces.models import Membership
from apps.workspaces.roles import Action
from qweb.lib.markdown import render_markdown
from qweb.ratelimit import rate_limit
from qweb.realtime import broadcast


def _history(path: Sequence[Message]) -> list[HistoryTurn]:
    """The question → answer pairs of a path whose answer has text, oldest first.

    ``path`` is the conversation as the asker sees it (one version of each message), so a
    new turn's history is what is on the page, never a version that was not chosen.
    """
    turns: list[HistoryTurn] = []
    question: str | None = None
    for message in path:
        if message.role == Message.Role.USER:
            question = message.content
        elif question is not None and message.content and not message.is_pending:
            turns.append(HistoryTurn(question=question, answer=message.content))
            question = None
    return turns


def message_created_event(message: Message) -> MessageCreated:
    return MessageCreated(
        type="message.created",
        conversation_id=message.conversation_id,
        message_id=message.pk,
        parent_id=message.parent_id,
        role=message.role,
        author=message.author.display_name if message.author else "qweb",
        html=message.html,
        state=message.state,
        job_id=message.job_id,
        context=message.context,
    )


def message_finished_event(message: Message) -> MessageFinished:
    return MessageFinished(
        type="message.finished",
        conversation_id=message.conversation_id,
        message_id=message.pk,
        state=message.state,
        html=message.html,
        error=message.error,
        prompt_tokens=message.prompt_tokens,
        completion_tokens=message.completion_tokens,
    )


def _question_text(text: str) -> str:
    """The question trimmed; refused when empty or over the size limit."""
    text = text.strip()
    if not text:
        raise ValidationError({"text": NO_QUESTION})
    limit = settings.QWEB_CHAT_MAX_MESSAGE_CHARS
    if len(text) > limit:
        raise ValidationError(
            {"text": f"Messages are limited to {limit:,} characters; this one has {len(text):,}."}
        )
    return text


def _ensure_no_answer_pending(conversation: Conversation) -> None:
    if conversation.messages.filter(state=Message.State.PENDING).exists():
        raise ValidationError({"text": ANSWER_PENDING})


def _ensure_may_ask(membership: Membership, conversation: Conversation) -> None:
    """One answer at a time, within the member's daily quota and rate limit."""
    _ensure_no_answer_pending(conversation)
    quota = settings.QWEB_CHAT_DAILY_TOKENS
    if (
        quota
        and usage_today(user_id=membership.user_id, workspace_id=membership.workspace_id) >= quota
    ):
        raise ValidationError(
            {"text": f"You have used today's {quota:,} tokens here; ask again tomorrow."}
        )
    rate_limit(
        f"chat:{membership.user_id}",
        count=settings.QWEB_CHAT_RATE_COUNT,
        seconds=settings.QWEB_CHAT_RATE_SECONDS,
    )


def _turn_for(
    conversation: Conversation, text: str, extra_pins: Sequence[str], follows: Message | None
) -> tuple[TurnPrompt, list[str]]:
    """The turn's prompt and its pins: the conversation's, this post's and the @mentions.

    ``follows`` is the answer the question comes after (None for a first question): the
    history is the path down to it.
    """
    known = _ready_manifest(conversation)
    pins = list(
        dict.fromkeys([*conversation.pinned_paths, *extra_pins, *mentioned_paths(text, known)])
    )[:MAX_PINS]
    path = message_path(
        conversation=conversation, message_id=follows.pk if follows is not None else None
    )
    try:
        turn = turn_prompt_build(
            repository=conversation.repository,
            ref=conversation.ref,
            question=text,
            history=_history(path),
            pinned=pins,
        )
    except PromptError as error:
        raise ValidationError({"text": str(error)}) from None
    return turn, pins


def _turn_store(
    membership: Membership,
    conversation: Conversation,
    turn: TurnPrompt,
    pins: list[str],
    *,
    question: Message,
) -> Message:
    """The question (if new), its queued job and the pending answer, committed and announced.

    ``question`` is unsaved for a new question or an edit, saved when an answer is asked
    for again. The conversation's row lock makes two posts at once give one answer, not two.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        _ensure_no_answer_pending(locked)
        asked = question.pk is None
        if asked:
            question.conversation = locked
            question.commit = turn.commit
            question.created_at = now
            question.save()
        job = job_submit(
            messages=turn.messages,
            params={"max_new_tokens": turn.manifest["answer_tokens"]},
            kind="chat",
            workspace_id=conversation.workspace_id,
            user_id=membership.user_id,
        )
        answer = Message.objects.create(
            conversation=locked,
            role=Message.Role.ASSISTANT,
            parent=question,
            state=Message.State.PENDING,
            job=job,
            commit=turn.commit,
            context={**turn.manifest, "pinned": pins},
            created_at=now,
        )
        title = _first_title(locked, question) if asked else None
        Conversation.objects.filter(pk=locked.pk).update(
            updated_at=now, **({"title": title} if title else {})
        )
        _turn_announce(conversation.pk, question if asked else None, answer, title)
    return answer


def _new_question(membership: Membership, text: str, parent: Message | None) -> Message:
    """A question not saved yet (``_turn_store`` saves it with its answer)."""
    return Message(
        role=Message.Role.USER,
        parent=parent,
        author_id=membership.user_id,
        content=text,
        html=render_markdown(text),
    )


def _first_title(conversation: Conversation, question: Message) -> str | None:
    """The title an untitled conversation takes from its first question; None otherwise."""
    if (
        conversation.title == UNTITLED
        and not conversation.messages.filter(role=Message.Role.USER)
        .exclude(pk=question.pk)
        .exists()
    ):
        return _title_from_question(question.content)
    return None


def _turn_announce(
    conversation_id: int, question: Message | None, answer: Message, title: str | None
) -> None:
    group = conversation_group(conversation_id)
    if question is not None:
        broadcast(group, message_created_event(question))
    broadcast(group, message_created_event(answer))
    if title:
        broadcast(
            group,
            ConversationRenamed(
                type="conversation.renamed", conversation_id=conversation_id, title=title
            ),
        )


def _answer_of(conversation: Conversation, message_id: int | None) -> Message:
    answer = conversation.messages.filter(pk=message_id, role=Message.Role.ASSISTANT).first()
    if answer is None:
        raise ValidationError({"message_id": NO_SUCH_ANSWER})
    return answer


def conversation_post_message(
    *,
    membership: Membership,
    conversation: Conversation,
    text: str,
    pinned: Sequence[str] = (),
    parent_id: int | None = None,
) -> Message:
    """Ask a question: store it, build the turn's prompt, queue the answer; returns the answer.

    The question follows answer ``parent_id`` (the last one on the asker's page), by default
    the newest answer. Refused with the reason (nothing stored) for viewers, empty or
    oversized text, a post while an answer is still being written, a member over the rate
    limit or daily quota, and turns that cannot be built (commit not indexed, pinned files
    over the budget).
    """
    _ensure_member_of(membership, conversation, Action.CONTRIBUTE)
    text = _question_text(text)
    if parent_id is None:
        follows = conversation_latest_answer(conversation=conversation)
    else:
        follows = _answer_of(conversation, parent_id)
    _ensure_may_ask(membership, conversation)
    turn, pins = _turn_for(conversation, text, pinned, follows)
    return _turn_store(
        membership, conversation, turn, pins, question=_new_question(membership, text, follows)
    )


def answer_regenerate(
    *, membership: Membership, conversation: Conversation, message_id: int
) -> Message:
    """Ask for answer ``message_id`` again, with the current pins: a new version beside it.

    Also how a failed or stopped answer is retried. The same rules as a post apply, and the
    earlier version stays, navigable.
    """
    _ensure_member_of(membership, conversation, Action.CONTRIBUTE)
    answer = _answer_of(conversation, message_id)
    question = answer.parent
    if question is None:
        raise ValidationError({"message_id": "That answer has no question to ask again."})
    _ensure_may_ask(membership, conversation)
    turn, pins = _turn_for(conversation, question.content, (), question.parent)
    return _turn_store(membership, conversation, turn, pins, question=question)


def question_edit(
    *, membership: Membership, conversation: Conversation, message_id: int, text: str
) -> Message:
    """Ask question ``message_id`` anew with ``text``: a new version of it, answered afresh.

    The edited question follows the same answer as the original, so its history is the same
    path; the original and what followed it stay, navigable. Returns the new answer.
    """
    _ensure_member_of(membership, conversation, Action.CONTRIBUTE)
    original = conversation.messages.filter(pk=message_id, role=Message.Role.USER).first()
    if original is None:
        raise ValidationError({"message_id": NO_SUCH_QUESTION})
    text = _question_text(text)
    _ensure_may_ask(membership, conversation)
    turn, pins = _turn_for(conversation, text, (), original.parent)
    return _turn_store(
        membership,
        conversation,
        turn,
        pins,
        question=_new_question(membership, text, original.parent),
    )


def message_stop(*, membership: Membership, conversation: Conversation, message_id: int) -> None:
    """Stop an answer that is being written (within a second for a running one)."""
    _ensure_member_of(membership, conversation, Action.CONTRIBUTE)
    message = conversation.messages.filter(pk=message_id).first()
    if message is None or message.job_id is None:
        raise ValidationError({"message": NO_SUCH_ANSWER})
    if message.state == Message.State.PENDING:
        job_cancel(job_id=message.job_id)
