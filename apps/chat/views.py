"""Chat pages: the conversation list, one conversation, and the small endpoints its page uses.

Posting, regenerating, editing, stopping and pinning normally travel over the
conversation's websocket; the POST endpoints here do the same through the same services, for
scripts and for pages whose socket is down. The page shows one path through the versions of
its messages (``?leaf=``, the thread fragment when the reader switches versions).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.chat import services
from apps.chat.forms import (
    ConversationNewForm,
    ConversationRenameForm,
    MessagePostForm,
    MessageStopForm,
    PinsForm,
    QuestionEditForm,
    RegenerateForm,
)
from apps.chat.models import Conversation, Message
from apps.chat.selectors import (
    conversation_get,
    conversation_list,
    conversation_pin_costs,
    conversation_thread,
    message_versions,
    usage_today,
)
from apps.repos.models import IndexedCommit
from apps.repos.selectors import repository_list
from apps.repos.turn import PromptError, answer_reserve, context_window
from apps.workspaces.models import Membership
from apps.workspaces.permissions import page_context, require_membership
from apps.workspaces.roles import Action
from qweb.lib.gitstore import GitStore
from qweb.views import error_text

MAX_PATH_SUGGESTIONS = 20


def _context(membership: Membership, **extra: object) -> dict[str, object]:
    extra.setdefault("max_chars", settings.QWEB_CHAT_MAX_MESSAGE_CHARS)
    return page_context(membership, tab="chat", **extra)


def _conversation_for(
    request: HttpRequest, slug: str, conversation_id: int, action: Action = Action.VIEW
) -> tuple[Membership, Conversation]:
    """The requester's membership (checked for ``action``) and the workspace's conversation."""
    membership = require_membership(request, slug, action)
    return membership, conversation_get(
        workspace=membership.workspace, conversation_id=conversation_id
    )


def _back(slug: str, conversation: Conversation) -> HttpResponse:
    return redirect("chat:detail", slug=slug, conversation_id=conversation.pk)


@login_required
@require_GET
def conversation_index(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug)
    query = request.GET.get("q", "")[:200]
    repository_id = request.GET.get("repository") or ""
    conversations = conversation_list(
        workspace=membership.workspace,
        query=query,
        repository_id=int(repository_id) if repository_id.isdecimal() else None,
    )
    repositories = [r for r in repository_list(workspace=membership.workspace) if r.head_sha]
    return render(
        request,
        "chat/list.html",
        _context(
            membership,
            conversations=conversations[:200],
            repositories=repositories,
            query=query,
            repository_id=repository_id,
        ),
    )


@login_required
@require_POST
def conversation_new(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.CONTRIBUTE)
    form = ConversationNewForm(request.POST, workspace=membership.workspace)
    try:
        data = form.cleaned()
        conversation = services.conversation_create(
            membership=membership,
            repository=data["repository"],
            ref=data["ref"],
            title=data["title"],
        )
    except ValidationError as error:
        messages.error(request, error_text(error))
        return redirect("chat:index", slug=slug)
    if data["question"]:
        try:
            services.conversation_post_message(
                membership=membership, conversation=conversation, text=data["question"]
            )
        except ValidationError as error:
            messages.error(request, error_text(error))
    return _back(slug, conversation)


def _indexed_state(conversation: Conversation) -> tuple[str, str | None]:
    """The commit the conversation's ref points at and its index state ("" if none)."""
    sha = GitStore(conversation.repository.store_path).resolve_optional(conversation.ref)
    if sha is None:
        return "", None
    indexed = IndexedCommit.objects.filter(repository=conversation.repository, sha=sha).first()
    return sha, indexed.state if indexed else None


def _leaf(request: HttpRequest) -> int | None:
    """The message whose path the page shows (``?leaf=``); none: the latest."""
    leaf = request.GET.get("leaf", "")
    return int(leaf) if leaf.isdecimal() and len(leaf) < 12 else None


@login_required
@require_GET
def conversation_detail(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    membership, conversation = _conversation_for(request, slug, conversation_id)
    sha, index_state = _indexed_state(conversation)
    try:
        window: int | None = context_window()
        window_error = ""
    except PromptError as error:  # a remote server that cannot be asked, nothing known yet
        window, window_error = None, str(error)
    return render(
        request,
        "chat/detail.html",
        _context(
            membership,
            conversation=conversation,
            thread=conversation_thread(conversation=conversation, leaf_id=_leaf(request)),
            pin_costs=conversation_pin_costs(conversation=conversation),
            head_sha=sha,
            index_state=index_state,
            window=window,
            window_error=window_error,
            budget=window - answer_reserve(window) if window else None,
            usage_today=usage_today(
                user_id=membership.user_id, workspace_id=membership.workspace_id
            ),
        ),
    )


@login_required
@require_GET
def message_fragment(
    request: HttpRequest, slug: str, conversation_id: int, message_id: int
) -> HttpResponse:
    """One message as the page shows it, for answers that started after the page loaded."""
    membership, conversation = _conversation_for(request, slug, conversation_id)
    message = conversation.messages.select_related("author", "job").filter(pk=message_id).first()
    if message is None:
        return HttpResponse("No such message.", status=404)
    return render(
        request,
        "chat/_message.html",
        _context(
            membership,
            conversation=conversation,
            message=message,
            version=message_versions(message=message),
        ),
    )


@login_required
@require_GET
def conversation_thread_fragment(
    request: HttpRequest, slug: str, conversation_id: int
) -> HttpResponse:
    """The messages on the path through ``?leaf=`` (a version to show, or the page's last)."""
    membership, conversation = _conversation_for(request, slug, conversation_id)
    return render(
        request,
        "chat/_thread.html",
        _context(
            membership,
            conversation=conversation,
            thread=conversation_thread(conversation=conversation, leaf_id=_leaf(request)),
        ),
    )


@login_required
@require_GET
def conversation_pins_panel(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    """The pinned panel, each pin with its cost and whether it fits (after pins change)."""
    membership, conversation = _conversation_for(request, slug, conversation_id)
    return render(
        request,
        "chat/_pins.html",
        _context(
            membership,
            conversation=conversation,
            pin_costs=conversation_pin_costs(conversation=conversation),
        ),
    )


@login_required
@require_POST
def conversation_post(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    membership, conversation = _conversation_for(request, slug, conversation_id, Action.CONTRIBUTE)
    wants_json = request.headers.get("Accept") == "application/json"
    try:
        data = MessagePostForm(request.POST).cleaned()
        answer = services.conversation_post_message(
            membership=membership,
            conversation=conversation,
            text=data["text"],
            pinned=data["pinned"],
            parent_id=data["parent_id"],
        )
    except services.RateLimited as error:
        response = JsonResponse({"error": error_text(error)}, status=429)
        response["Retry-After"] = str(error.retry_after)
        if request.htmx or wants_json:
            return response
        messages.error(request, error_text(error))
    except ValidationError as error:
        if wants_json:
            return JsonResponse({"error": error_text(error)}, status=400)
        messages.error(request, error_text(error))
    else:
        if wants_json:
            return JsonResponse({"message_id": answer.pk, "job_id": answer.job_id}, status=201)
    return _back(slug, conversation)


def _asked_again(
    request: HttpRequest, slug: str, conversation: Conversation, ask: Callable[[], Message]
) -> HttpResponse:
    """After a regenerate or an edit: the page at the new answer, or the refusal flashed."""
    try:
        answer = ask()
    except ValidationError as error:  # RateLimited included
        messages.error(request, error_text(error))
        return _back(slug, conversation)
    url = reverse("chat:detail", args=[slug, conversation.pk])
    return redirect(f"{url}?leaf={answer.pk}")


@login_required
@require_POST
def message_regenerate(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    membership, conversation = _conversation_for(request, slug, conversation_id, Action.CONTRIBUTE)
    form = RegenerateForm(request.POST)
    return _asked_again(
        request,
        slug,
        conversation,
        lambda: services.answer_regenerate(
            membership=membership,
            conversation=conversation,
            message_id=form.cleaned()["message_id"],
        ),
    )


@login_required
@require_POST
def message_edit(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    membership, conversation = _conversation_for(request, slug, conversation_id, Action.CONTRIBUTE)
    form = QuestionEditForm(request.POST)

    def ask() -> Message:
        data = form.cleaned()
        return services.question_edit(
            membership=membership,
            conversation=conversation,
            message_id=data["message_id"],
            text=data["text"],
        )

    return _asked_again(request, slug, conversation, ask)


@login_required
@require_POST
def conversation_stop(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    membership, conversation = _conversation_for(request, slug, conversation_id, Action.CONTRIBUTE)
    try:
        data = MessageStopForm(request.POST).cleaned()
        services.message_stop(
            membership=membership, conversation=conversation, message_id=data["message_id"]
        )
    except ValidationError as error:
        messages.error(request, error_text(error))
    return _back(slug, conversation)


@login_required
@require_POST
def conversation_rename(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    membership, conversation = _conversation_for(request, slug, conversation_id, Action.CONTRIBUTE)
    try:
        data = ConversationRenameForm(request.POST).cleaned()
        services.conversation_rename(
            membership=membership, conversation=conversation, title=data["title"]
        )
    except ValidationError as error:
        messages.error(request, error_text(error))
    return _back(slug, conversation)


@login_required
@require_POST
def conversation_delete(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    membership, conversation = _conversation_for(request, slug, conversation_id, Action.CONTRIBUTE)
    title = conversation.title
    services.conversation_delete(membership=membership, conversation=conversation)
    messages.success(request, f"Deleted “{title}”.")
    return redirect("chat:index", slug=slug)


@login_required
@require_POST
def conversation_pins(request: HttpRequest, slug: str, conversation_id: int) -> HttpResponse:
    membership, conversation = _conversation_for(request, slug, conversation_id, Action.CONTRIBUTE)
    try:
        data = PinsForm(request.POST).cleaned()
        services.conversation_pins_set(
            membership=membership, conversation=conversation, paths=data["pinned"]
        )
    except ValidationError as error:
        messages.error(request, error_text(error))
    return _back(slug, conversation)


@login_required
@require_GET
def conversation_paths(request: HttpRequest, slug: str, conversation_id: int) -> JsonResponse:
    """Files of the conversation's commit matching ``q``, for ``@path`` autocomplete."""
    _, conversation = _conversation_for(request, slug, conversation_id)
    query = request.GET.get("q", "").strip().lower()[:200]
    sha, _ = _indexed_state(conversation)
    indexed = IndexedCommit.objects.filter(
        repository=conversation.repository, sha=sha, state=IndexedCommit.State.READY
    ).first()
    if indexed is None:
        return JsonResponse({"paths": [], "indexed": False})
    paths = [path for path, _, _ in indexed.manifest]
    # File-name matches first, then anywhere in the path; shorter paths first within each.
    named = [p for p in paths if query in p.rsplit("/", 1)[-1].lower()]
    anywhere = [p for p in paths if query in p.lower() and p not in set(named)]
    ranked = sorted(named, key=len) + sorted(anywhere, key=len)
    return JsonResponse({"paths": ranked[:MAX_PATH_SUGGESTIONS], "indexed": True})
