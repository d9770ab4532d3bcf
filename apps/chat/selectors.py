"""Reads for conversations."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from apps.chat.models import Conversation, Message, TokenUsage
from apps.repos.models import IndexedBlob, IndexedCommit
from apps.repos.tokens import token_counter
from apps.repos.turn import (
    FIXED_SLACK,
    MESSAGE_OVERHEAD,
    SYSTEM_PROMPT,
    PromptError,
    answer_reserve,
    context_window,
)
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.selectors import membership_find
from qweb.lib.gitstore import GitStore


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
    return conversation.messages.select_related("author", "job").order_by("created_at", "pk")


@dataclass(frozen=True)
class ThreadEntry:
    """A message as the page shows it on a path: which of its versions it is, and its others."""

    message: Message
    number: int
    count: int
    previous_id: int | None
    next_id: int | None


def _children(messages: list[Message]) -> dict[int | None, list[Message]]:
    """Each message's children (versions), oldest first; ``None`` holds the first questions."""
    children: dict[int | None, list[Message]] = defaultdict(list)
    for message in sorted(messages, key=lambda m: m.pk):
        children[message.parent_id].append(message)
    return children


def _entry(message: Message, siblings: list[Message]) -> ThreadEntry:
    versions = [m for m in siblings if m.role == message.role]
    index = versions.index(message)
    return ThreadEntry(
        message=message,
        number=index + 1,
        count=len(versions),
        previous_id=versions[index - 1].pk if index > 0 else None,
        next_id=versions[index + 1].pk if index + 1 < len(versions) else None,
    )


def conversation_thread(
    *, conversation: Conversation, leaf_id: int | None = None
) -> list[ThreadEntry]:
    """The path the page shows, first question first, each message with its versions.

    The path runs through ``leaf_id`` (a message of the conversation, else the newest one)
    and on down through the newest version below it, so showing a version shows the latest
    of what followed it.
    """
    messages = list(conversation_messages(conversation=conversation))
    if not messages:
        return []
    by_id = {m.pk: m for m in messages}
    children = _children(messages)
    node = by_id.get(leaf_id) if leaf_id is not None else None
    if node is None:
        node = max(messages, key=lambda m: m.pk)
    while children.get(node.pk):
        node = children[node.pk][-1]
    path: list[Message] = []
    current: Message | None = node
    while current is not None:
        path.append(current)
        current = by_id.get(current.parent_id) if current.parent_id is not None else None
    return [_entry(m, children[m.parent_id]) for m in reversed(path)]


def message_path(*, conversation: Conversation, message_id: int | None) -> list[Message]:
    """The messages from the first question down to ``message_id``, inclusive (empty: none)."""
    if message_id is None:
        return []
    parents = dict(conversation.messages.values_list("pk", "parent_id"))
    if message_id not in parents:
        return []
    ids: list[int] = []
    current: int | None = message_id
    while current is not None:
        ids.append(current)
        current = parents.get(current)
    found = conversation.messages.in_bulk(ids)
    return [found[pk] for pk in reversed(ids)]


def message_versions(*, message: Message) -> ThreadEntry:
    """One message with its versions (for a message rendered on its own)."""
    siblings = list(
        Message.objects.filter(
            conversation_id=message.conversation_id, parent_id=message.parent_id
        ).order_by("pk")
    )
    return _entry(message, siblings)


def conversation_latest_answer(*, conversation: Conversation) -> Message | None:
    """The newest answer: where a question asked without saying where goes (the latest path)."""
    return conversation.messages.filter(role=Message.Role.ASSISTANT).order_by("-pk").first()


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
    return Message.objects.select_related("job", "conversation").filter(pk=message_id).first()


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


@dataclass(frozen=True)
class PinCost:
    """A pinned file as the pinned panel shows it: what it costs and whether it still fits."""

    path: str
    tokens: int | None  # None: not a file of the commit the next question would read
    fits: bool
    reason: str


def conversation_pin_costs(*, conversation: Conversation) -> list[PinCost]:
    """Each pin's tokens, and which ones the next turn cannot take whole.

    The prompt builder refuses a turn whose pins are not in its commit or need more than is
    left for files (``apps.repos.turn._check_pins``); this says which pin that is before
    anyone asks. The room is the most a turn can give files: the budget less the
    instructions, before history and the question take their share.
    """
    paths = list(conversation.pinned_paths)
    if not paths:
        return []
    repository = conversation.repository
    sha = GitStore(repository.store_path).resolve_optional(conversation.ref)
    indexed = IndexedCommit.objects.filter(
        repository=repository, sha=sha, state=IndexedCommit.State.READY
    ).first()
    if indexed is None:
        return [PinCost(path, None, True, "") for path in paths]
    blobs = {path: blob for path, blob, _ in indexed.manifest}
    tokens = dict(
        IndexedBlob.objects.filter(sha__in=[blobs[p] for p in paths if p in blobs]).values_list(
            "sha", "tokens"
        )
    )
    room = _files_room(repository.name, indexed.sha)
    costs: list[PinCost] = []
    used = 0
    for path in paths:
        if path not in blobs:
            costs.append(PinCost(path, None, False, f"Not in commit {indexed.sha[:12]}."))
            continue
        cost = tokens.get(blobs[path], 0)
        used += cost
        if room is not None and used > room:
            reason = (
                f"Does not fit: {cost:,} tokens, and the pins up to here need {used:,} "
                f"of the {room:,} a turn has for files. Unpin it or a file above."
            )
            costs.append(PinCost(path, cost, False, reason))
        else:
            costs.append(PinCost(path, cost, True, ""))
    return costs


def _files_room(name: str, sha: str) -> int | None:
    """The most tokens a turn has for files, or None when the model's window is not known."""
    try:
        window = context_window()
    except PromptError:
        return None
    count = token_counter().count
    head = SYSTEM_PROMPT.format(name=name, commit=sha[:12])
    fixed = count(head) + 2 * MESSAGE_OVERHEAD + FIXED_SLACK
    return max(0, window - answer_reserve(window) - fixed)
