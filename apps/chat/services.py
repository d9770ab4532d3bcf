"""Writes for conversations: every rule of chat lives here, once.

The web views, the websocket consumer and the commands all call these. Each takes the
actor's ``membership`` (read fresh by the caller for this request or frame) and checks the
role itself, so no entry point can forget it.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.chat.events import (
    ConversationDeleted,
    ConversationPinsChanged,
    ConversationRenamed,
    MessageCreated,
    MessageFinished,
    conversation_group,
)
from apps.chat.models import Conversation, Message, TokenUsage
from apps.chat.prompt import mentioned_paths
from apps.chat.selectors import usage_today
from apps.generation.models import GenerationJob
from apps.generation.services import job_cancel, job_submit
from apps.repos.models import IndexedCommit, Repository
from apps.repos.turn import HistoryTurn, PromptError, TurnPrompt, turn_prompt_build
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.gitstore import GitStore
from qweb.lib.markdown import render_markdown
from qweb.ratelimit import RateLimited, rate_limit  # noqa: F401 - RateLimited re-exported
from qweb.realtime import broadcast

MAX_TITLE = 200
MAX_PINS = 20
UNTITLED = "New conversation"
NO_QUESTION = "Write a question first."
NO_SUCH_ANSWER = "There is no such answer in this conversation."
ANSWER_PENDING = "An answer is still being written: wait for it or stop it first."


def _ensure_member_of(membership: Membership, conversation: Conversation, action: Action) -> None:
    """The actor's role allows ``action``, and the conversation is in the actor's workspace."""
    ensure_can(membership, action)
    if membership.workspace_id != conversation.workspace_id:
        raise PermissionDenied("This conversation belongs to another workspace.")


def _clean_title(title: str) -> str:
    title = " ".join((title or "").split())
    if len(title) > MAX_TITLE:
        raise ValidationError({"title": f"Titles are limited to {MAX_TITLE} characters."})
    return title


def _title_from_question(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= 80 else words[:79].rsplit(" ", 1)[0] + "…"


def conversation_create(
    *, membership: Membership, repository: Repository, ref: str = "", title: str = ""
) -> Conversation:
    """Start a conversation about ``repository`` at a branch or commit (its default branch)."""
    ensure_can(membership, Action.CONTRIBUTE)
    if repository.workspace_id != membership.workspace_id:
        raise ValidationError({"repository": "Choose a repository of this workspace."})
    ref = (ref or "").strip() or repository.default_branch
    if ref.startswith("-") or any(ch.isspace() for ch in ref) or len(ref) > 255:
        raise ValidationError({"ref": "Give a branch name or a commit sha."})
    if not repository.head_sha:
        raise ValidationError({"repository": f"{repository.name} has no commit yet."})
    if GitStore(repository.store_path).resolve_optional(ref) is None:
        raise ValidationError({"ref": f"{ref!r} is not a branch or commit of {repository.name}."})
    return Conversation.objects.create(
        workspace_id=membership.workspace_id,
        repository=repository,
        ref=ref,
        title=_clean_title(title) or UNTITLED,
        created_by_id=membership.user_id,
    )


def conversation_rename(
    *, membership: Membership, conversation: Conversation, title: str
) -> Conversation:
    """Give the conversation a new title; open pages update live."""
    _ensure_member_of(membership, conversation, Action.CONTRIBUTE)
    title = _clean_title(title)
    if not title:
        raise ValidationError({"title": "Give the conversation a title."})
    conversation.title = title
    conversation.save(update_fields=["title"])
    broadcast(
        conversation_group(conversation.pk),
        ConversationRenamed(
            type="conversation.renamed", conversation_id=conversation.pk, title=title
        ),
    )
    return conversation


def conversation_delete(*, membership: Membership, conversation: Conversation) -> None:
    """Delete the conversation (its starter, or an admin), stopping any answer in progress."""
    _ensure_member_of(membership, conversation, Action.CONTRIBUTE)
    if conversation.created_by_id != membership.user_id:
        ensure_can(membership, Action.MANAGE_MEMBERS)
    conversation_id = conversation.pk
    with transaction.atomic():
        for job_id in conversation.messages.filter(
            state=Message.State.PENDING, job__isnull=False
        ).values_list("job_id", flat=True):
            job_cancel(job_id=job_id)
        conversation.delete()
        broadcast(
            conversation_group(conversation_id),
            ConversationDeleted(type="conversation.deleted", conversation_id=conversation_id),
        )


def _ready_manifest(conversation: Conversation) -> set[str]:
    """Paths of the newest indexed commit of the conversation's ref (empty if none yet)."""
    repository = conversation.repository
    sha = GitStore(repository.store_path).resolve_optional(conversation.ref)
    indexed = IndexedCommit.objects.filter(
        repository=repository, sha=sha, state=IndexedCommit.State.READY
    ).first()
    return set() if indexed is None else {path for path, _, _ in indexed.manifest}


def conversation_pins_set(
    *, membership: Membership, conversation: Conversation, paths: Sequence[str]
) -> Conversation:
    """Pin files: they go into every following turn whole."""
    _ensure_member_of(membership, conversation, Action.CONTRIBUTE)
    cleaned = list(dict.fromkeys(p.strip() for p in paths if p.strip()))
    if len(cleaned) > MAX_PINS:
        raise ValidationError({"pinned": f"Pin at most {MAX_PINS} files."})
    known = _ready_manifest(conversation)
    unknown = [p for p in cleaned if p not in known]
    if unknown:
        raise ValidationError({"pinned": f"No such file in this commit: {', '.join(unknown)}."})
    conversation.pinned_paths = cleaned
    conversation.save(update_fields=["pinned_paths"])
    broadcast(
        conversation_group(conversation.pk),
        ConversationPinsChanged(
            type="conversation.pins_changed", conversation_id=conversation.pk, pinned=cleaned
        ),
    )
    return conversation


def _history(conversation: Conversation) -> list[HistoryTurn]:
    """Earlier question → answer pairs whose answer has text, oldest first."""
    turns: list[HistoryTurn] = []
    question: str | None = None
    for role, content, state in conversation.messages.order_by("created_at", "pk").values_list(
        "role", "content", "state"
    ):
        if role == Message.Role.USER:
            question = content
        elif question is not None and content and state != Message.State.PENDING:
            turns.append(HistoryTurn(question=question, answer=content))
            question = None
    return turns


def message_created_event(message: Message) -> MessageCreated:
    return MessageCreated(
        type="message.created",
        conversation_id=message.conversation_id,
        message_id=message.pk,
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
    conversation: Conversation, text: str, extra_pins: Sequence[str]
) -> tuple[TurnPrompt, list[str]]:
    """The turn's prompt and its pins: the conversation's, this post's and the @mentions."""
    known = _ready_manifest(conversation)
    pins = list(
        dict.fromkeys([*conversation.pinned_paths, *extra_pins, *mentioned_paths(text, known)])
    )[:MAX_PINS]
    try:
        turn = turn_prompt_build(
            repository=conversation.repository,
            ref=conversation.ref,
            question=text,
            history=_history(conversation),
            pinned=pins,
        )
    except PromptError as error:
        raise ValidationError({"text": str(error)}) from None
    return turn, pins


def _turn_store(
    membership: Membership, conversation: Conversation, text: str, turn: TurnPrompt, pins: list[str]
) -> Message:
    """The question, its queued job and the pending answer, committed together and announced.

    The conversation's row lock makes two posts at once give one answer, not two.
    """
    now = timezone.now()
    with transaction.atomic():
        locked = Conversation.objects.select_for_update().get(pk=conversation.pk)
        _ensure_no_answer_pending(locked)
        question = Message.objects.create(
            conversation=locked,
            role=Message.Role.USER,
            author_id=membership.user_id,
            content=text,
            html=render_markdown(text),
            commit=turn.commit,
            created_at=now,
        )
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
            state=Message.State.PENDING,
            job=job,
            commit=turn.commit,
            context={**turn.manifest, "pinned": pins},
            created_at=now,
        )
        title = _first_title(locked, question)
        Conversation.objects.filter(pk=locked.pk).update(
            updated_at=now, **({"title": title} if title else {})
        )
        _turn_announce(conversation.pk, question, answer, title)
    return answer


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
    conversation_id: int, question: Message, answer: Message, title: str | None
) -> None:
    group = conversation_group(conversation_id)
    broadcast(group, message_created_event(question))
    broadcast(group, message_created_event(answer))
    if title:
        broadcast(
            group,
            ConversationRenamed(
                type="conversation.renamed", conversation_id=conversation_id, title=title
            ),
        )


def conversation_post_message(
    *,
    membership: Membership,
    conversation: Conversation,
    text: str,
    pinned: Sequence[str] = (),
) -> Message:
    """Ask a question: store it, build the turn's prompt, queue the answer; returns the answer.

    Refused with the reason (nothing stored) for viewers, empty or oversized text, a post
    while an answer is still being written, a member over the rate limit or daily quota, and
    turns that cannot be built (commit not indexed, pinned files over the budget).
    """
    _ensure_member_of(membership, conversation, Action.CONTRIBUTE)
    text = _question_text(text)
    _ensure_may_ask(membership, conversation)
    turn, pins = _turn_for(conversation, text, pinned)
    return _turn_store(membership, conversation, text, turn, pins)


def conversation_ask_again(
    *, membership: Membership, conversation: Conversation, message_id: int
) -> Message:
    """Ask the question behind answer ``message_id`` again, with the current pins."""
    answer = conversation.messages.filter(pk=message_id, role=Message.Role.ASSISTANT).first()
    if answer is None:
        raise ValidationError({"text": NO_SUCH_ANSWER})
    question = (
        conversation.messages.filter(role=Message.Role.USER, pk__lt=answer.pk)
        .order_by("-pk")
        .first()
    )
    if question is None:
        raise ValidationError({"text": "That answer has no question to ask again."})
    return conversation_post_message(
        membership=membership, conversation=conversation, text=question.content
    )


def message_stop(*, membership: Membership, conversation: Conversation, message_id: int) -> None:
    """Stop an answer that is being written (within a second for a running one)."""
    _ensure_member_of(membership, conversation, Action.CONTRIBUTE)
    message = conversation.messages.filter(pk=message_id).first()
    if message is None or message.job_id is None:
        raise ValidationError({"message": NO_SUCH_ANSWER})
    if message.state == Message.State.PENDING:
        job_cancel(job_id=message.job_id)


_FINAL_STATES = {
    GenerationJob.State.DONE: Message.State.DONE,
    GenerationJob.State.FAILED: Message.State.FAILED,
    GenerationJob.State.CANCELLED: Message.State.CANCELLED,
}


def answer_finish(*, job: GenerationJob) -> Message | None:
    """Store an ended job's text on its answer, rendered, and count its tokens once."""
    message = Message.objects.filter(job_id=job.pk).select_related("conversation").first()
    if message is None:
        return None
    state = _FINAL_STATES.get(job.state)
    if state is None:
        return None
    with transaction.atomic():
        updated = Message.objects.filter(pk=message.pk, state=Message.State.PENDING).update(
            state=state,
            content=job.text,
            html=render_markdown(job.text) if job.text else "",
            error=job.error,
            prompt_tokens=job.prompt_tokens,
            completion_tokens=job.completion_tokens,
        )
        if updated and job.created_by_id and (job.prompt_tokens or job.completion_tokens):
            _usage_add(
                user_id=job.created_by_id,
                workspace_id=message.conversation.workspace_id,
                prompt_tokens=job.prompt_tokens,
                completion_tokens=job.completion_tokens,
            )
    message.refresh_from_db()
    return message


def _usage_add(
    *, user_id: int, workspace_id: int, prompt_tokens: int, completion_tokens: int
) -> None:
    day = timezone.localdate()
    for _ in range(2):
        rows = TokenUsage.objects.filter(
            user_id=user_id, workspace_id=workspace_id, day=day
        ).update(
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            answers=F("answers") + 1,
        )
        if rows:
            return
        try:
            with transaction.atomic():
                TokenUsage.objects.create(
                    user_id=user_id,
                    workspace_id=workspace_id,
                    day=day,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    answers=1,
                )
            return
        except IntegrityError:  # created by a concurrent finish: add to it instead
            continue
