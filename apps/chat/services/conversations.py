"""Conversations themselves: start, rename, delete, pin files; and the rules every write shares."""

from __future__ import annotations

from collections.abc import Sequence

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from apps.chat.events import (
    ConversationDeleted,
    ConversationPinsChanged,
    ConversationRenamed,
    conversation_group,
)
from apps.chat.models import Conversation, Message
from apps.generation.services import job_cancel
from apps.repos.models import IndexedCommit, Repository
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.gitstore import GitStore
from qweb.realtime import broadcast

MAX_TITLE = 200
MAX_PINS = 20
UNTITLED = "New conversation"
NO_QUESTION = "Write a question first."
NO_SUCH_ANSWER = "There is no such answer in this conversation."
NO_SUCH_QUESTION = "There is no such question in this conversation."
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
