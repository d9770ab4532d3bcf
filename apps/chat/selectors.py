"""Reads for conversations."""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from apps.chat.models import Conversation, Message, TokenUsage
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.selectors import membership_find


def conversation_list(
    *, workspace: Workspace, query: str = "", repository_id: int | None = None
) -> QuerySet[Conversation]:
    """The workspace's conversations, newest activity first; ``query`` matches titles and text."""
    conversations = workspace.conversations.select_related("repository", "created_by").annotate(
        message_count=Count("messages")
    )
    if repository_id:
        conversations = conversations.filter(repository_id=repository_id)
    query = query.strip()
    if query:
        in_text = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=query)
        conversations = conversations.filter(Q(title__icontains=query) | Exists(in_text))
    return conversations.order_by("-updated_at", "-pk")


def conversation_get(*, workspace: Workspace, conversation_id: int) -> Conversation:
    """A conversation of ``workspace``; 404 for any other (nothing is confirmed to exist)."""
    conversation = (
        workspace.conversations.select_related("repository", "workspace")
        .filter(pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise Http404("No such conversation.")
    return conversation


def conversation_messages(*, conversation: Conversation) -> QuerySet[Message]:
    return conversation.messages.select_related("author").order_by("created_at", "pk")


def conversation_access(
    *, user_id: int, conversation_id: int
) -> tuple[Conversation, Membership] | None:
    """The conversation and the user's current membership of its workspace, or None."""
    conversation = (
        Conversation.objects.select_related("repository").filter(pk=conversation_id).first()
    )
    if conversation is None:
        return None
    membership = membership_find(user_id=user_id, workspace_id=conversation.workspace_id)
    return None if membership is None else (conversation, membership)


def conversation_recent_message_ids(*, conversation_id: int, limit: int) -> list[int]:
    """The ids of the latest ``limit`` messages, oldest first (for a page catching up)."""
    recent = Message.objects.filter(conversation_id=conversation_id).order_by("-pk")
    return sorted(recent.values_list("pk", flat=True)[:limit])


def message_find(*, message_id: int) -> Message | None:
    return Message.objects.filter(pk=message_id).first()


def conversation_pending_answers(*, conversation_id: int) -> list[tuple[int, int]]:
    """``(message id, job id)`` of answers still being written, oldest first."""
    return list(
        Message.objects.filter(
            conversation_id=conversation_id, state=Message.State.PENDING, job__isnull=False
        )
        .order_by("pk")
        .values_list("pk", "job_id")
    )


def usage_today(*, user_id: int, workspace_id: int) -> int:
    """Tokens (prompt and completion) the user's answers cost in the workspace today."""
    totals = TokenUsage.objects.filter(
        user_id=user_id, workspace_id=workspace_id, day=timezone.localdate()
    ).aggregate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"))
    return (totals["prompt"] or 0) + (totals["completion"] or 0)
