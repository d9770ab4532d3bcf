"""Refactor pages: sessions, the review of a proposal (diff viewer), apply and exports.

The page reads the proposal's stored file list (no git call), so even a change of hundreds
of files opens at once; each file's diff is fetched when it comes into view. Decisions and
comments travel over the session's websocket; the forms here work without it too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.refactors import services
from apps.refactors.forms import (
    ApplyForm,
    CommentForm,
    DecideAllForm,
    DecisionForm,
    EditFileForm,
    PolicyForm,
    RefactorForm,
    ReplyForm,
    ReviewForm,
    SuggestionDecisionForm,
    SuggestionForm,
    ThreadForm,
)
from apps.refactors.models import (
    APPROVER_ROLES,
    Apply,
    ChangeSet,
    RefactorPolicy,
    RefactorSession,
)
from apps.refactors.selectors import (
    ApprovalState,
    Thread,
    approval_state,
    approval_states,
    changeset_in_session,
    decision_fields,
    decisions_attributed,
    file_diff,
    file_suggestions,
    file_text,
    file_threads,
    hunk_holding,
    latest_changeset,
    may_approve,
    policy_for,
    review_state,
)
from apps.repos.selectors import repository_list
from apps.workspaces.models import Membership
from apps.workspaces.permissions import page_context, require_membership
from apps.workspaces.roles import Action, can
from qweb.forms import ActionForm
from qweb.lib.diffs import WHOLE_FILE
from qweb.lib.diffview import diff_rows, highlighted_lines
from qweb.lib.gitstore import GitStore
from qweb.views import error_text, site_url

MAX_CONTEXT = 200


def _context(membership: Membership, **extra: object) -> dict[str, object]:
    return page_context(membership, tab="refactors", **extra)


def _session_for(
    request: HttpRequest, slug: str, session_id: int, action: Action = Action.VIEW
) -> tuple[Membership, RefactorSession]:
    membership = require_membership(request, slug, action)
    session = (
        RefactorSession.objects.select_related("repository", "workspace", "created_by")
        .filter(workspace=membership.workspace, pk=session_id)
        .first()
    )
    if session is None:
        raise Http404("No such refactor.")
    return membership, session


def _changeset_for(
    request: HttpRequest,
    slug: str,
    session_id: int,
    changeset_id: int,
    action: Action = Action.VIEW,
) -> tuple[Membership, RefactorSession, ChangeSet]:
    membership, session = _session_for(request, slug, session_id, action)
    changeset = changeset_in_session(session=session, changeset_id=changeset_id)
    if changeset is None:
        raise Http404("No such proposal.")
    return membership, session, changeset


def _back(slug: str, session: RefactorSession) -> HttpResponse:
    return redirect("refactors:detail", slug=slug, session_id=session.pk)


@login_required
@require_GET
def refactor_index(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug)
    sessions = list(
        RefactorSession.objects.filter(workspace=membership.workspace)
        .select_related("repository", "created_by")
        .order_by("-updated_at", "-pk")[:200]
    )
    approvals = approval_states(sessions)
    for session in sessions:
        session.approval = approvals.get(session.pk)  # type: ignore[attr-defined]
    return render(
        request,
        "refactors/list.html",
        _context(
            membership,
            sessions=sessions,
            repositories=[r for r in repository_list(workspace=membership.workspace) if r.head_sha],
            policy=policy_for(membership.workspace_id),
            approver_roles=APPROVER_ROLES,
            preselect=request.GET.get("repository", ""),
        ),
    )


@login_required
@require_POST
def refactor_new(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.CONTRIBUTE)
    form = RefactorForm(request.POST, workspace_id=membership.workspace_id)
    try:
        data = form.cleaned()
        session = services.refactor_create(
            membership=membership,
            repository=data["repository"],
            instruction=data["instruction"],
            ref=data["branch"],
            scope=data["scope"],
        )
    except ValidationError as error:
        messages.error(request, error_text(error))
        return redirect("refactors:index", slug=slug)
    return redirect("refactors:detail", slug=slug, session_id=session.pk)


@login_required
@require_POST
def refactor_policy(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.MANAGE_MEMBERS)
    try:
        services.policy_update(membership=membership, **PolicyForm(request.POST).cleaned())
    except ValidationError as error:
        messages.error(request, error_text(error))
    else:
        messages.success(request, "Refactor policy saved.")
    return redirect("refactors:index", slug=slug)


@login_required
@require_GET
def refactor_detail(request: HttpRequest, slug: str, session_id: int) -> HttpResponse:
    membership, session = _session_for(request, slug, session_id)
    review = review_state(session=session, proposal=request.GET.get("proposal", ""))
    applies = list(
        Apply.objects.filter(changeset__session=session).select_related("applied_by", "changeset")
    )
    policy = policy_for(session.workspace_id)
    return render(
        request,
        "refactors/detail.html",
        _context(
            membership,
            session=session,
            changesets=review.changesets,
            current=review.current,
            is_latest=review.is_latest,
            files=review.files,
            refused=review.refused,
            session_success=review.success_rate,
            general_findings=review.general_findings,
            high_findings=review.high_findings,
            held_findings=review.held_findings,
            applies=applies,
            policy=policy,
            **_review_context(membership, review.approval, policy),
        ),
    )


def _review_context(
    membership: Membership, approval: ApprovalState | None, policy: RefactorPolicy
) -> dict[str, object]:
    """What the reviews panel shows: the proposal's approvals and whether one may review."""
    reviews = approval.reviews if approval else []
    mine = next((e.review for e in reviews if e.review.reviewer_id == membership.user_id), None)
    return {
        "approval": approval,
        "my_review": mine,
        "can_approve": can(membership.role, Action.CONTRIBUTE) and may_approve(membership, policy),
    }


@login_required
@require_GET
def changeset_reviews(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    """The reviews panel of a proposal alone: the page swaps it in when a review arrives."""
    membership, session, changeset = _changeset_for(request, slug, session_id, changeset_id)
    policy = policy_for(session.workspace_id)
    return render(
        request,
        "refactors/_reviews.html",
        _context(
            membership,
            session=session,
            current=changeset,
            is_latest=latest_changeset(session).pk == changeset.pk,
            policy=policy,
            **_review_context(membership, approval_state(changeset, policy), policy),
        ),
    )


@login_required
@require_POST
def changeset_review(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    membership, session, changeset = _changeset_for(
        request, slug, session_id, changeset_id, Action.CONTRIBUTE
    )
    try:
        data = ReviewForm(request.POST).cleaned()
        services.review_submit(membership=membership, changeset=changeset, **data)
    except ValidationError as error:
        messages.error(request, error_text(error))
    return _back(slug, session)


@login_required
@require_GET
def changeset_file(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    """One file's diff, highlighted, with its hunks' verdicts and comments (fetched lazily)."""
    membership, session, changeset = _changeset_for(request, slug, session_id, changeset_id)
    path = request.GET.get("path", "")
    try:
        context_lines = max(3, min(MAX_CONTEXT, int(request.GET.get("context", "3"))))
    except ValueError:
        context_lines = 3
    view = "split" if request.GET.get("view") == "split" else "unified"
    diff = file_diff(changeset, path, context_lines)
    if diff is None:
        raise Http404("No such file in this proposal.")
    store = GitStore(session.repository.store_path)
    old_text = (
        None if diff.status == "added" else file_text(store, session.base_commit, diff.old_path)
    )
    new_text = None if diff.status == "deleted" else file_text(store, changeset.commit, diff.path)
    decided = decisions_attributed(changeset, path).get(path, {})
    verdicts = {hunk: decision.verdict for hunk, decision in decided.items()}
    threads: dict[tuple[str, int], list[Thread]] = {}
    all_threads = file_threads(changeset, path)
    for thread in all_threads:
        if thread.line is not None:
            threads.setdefault((thread.root.side, thread.line), []).append(thread)
    suggestions: dict[int, list[Any]] = {}
    for suggestion in file_suggestions(changeset, path):
        hunk = hunk_holding(diff, suggestion.start)
        suggestions.setdefault(hunk.index if hunk else WHOLE_FILE, []).append(suggestion)
    findings = [f for f in changeset.findings if f["path"] == path]
    by_line: dict[int, list[dict[str, Any]]] = {}
    for finding in findings:
        by_line.setdefault(finding["line"], []).append(finding)
    hunks = diff_rows(
        diff, highlighted_lines(diff.old_path, old_text), highlighted_lines(path, new_text)
    )
    for entry in hunks:
        entry["verdict"] = verdicts.get(entry["hunk"].index, "")
        # Who decided it (a verdict on the whole file is each hunk's, with its author).
        entry["decision"] = decision_fields(
            decided.get(WHOLE_FILE) or decided.get(entry["hunk"].index)
        )
        entry["high_findings"] = [
            f
            for f in findings
            if f["severity"] == "high" and hunk_holding(diff, f["line"]) is entry["hunk"]
        ]
        entry["suggestions"] = suggestions.get(entry["hunk"].index, [])
        # What "suggest a change" starts from: the hunk's lines on the proposed side.
        # (each line ends with its newline, so a last blank line stays one).
        entry["new_text"] = "".join(
            line.text + "\n" for line in entry["hunk"].lines if line.kind in ("add", "context")
        )
        for row in entry["lines"]:
            side, number = row["side"], row["number"]
            row["threads"] = threads.pop((side, number), [])
            row["findings"] = by_line.get(number, []) if side == "new" else []
    return render(
        request,
        "refactors/_file_diff.html",
        _context(
            membership,
            session=session,
            changeset=changeset,
            diff=diff,
            hunks=hunks,
            whole_verdict=verdicts.get(WHOLE_FILE, ""),
            # Line 0, or a line no hunk shows: about the file as a whole.
            file_findings=[f for f in findings if hunk_holding(diff, f["line"]) is None],
            # Threads whose line no hunk shows (or that is gone), and suggestions outside
            # every hunk: listed above the diff.
            file_threads=[t for t in all_threads if t.outdated]
            + [t for found in threads.values() for t in found],
            file_suggestions=suggestions.get(WHOLE_FILE, []),
            view=view,
            context_lines=context_lines,
            more_context=min(MAX_CONTEXT, context_lines + 20),
            is_latest=latest_changeset(session).pk == changeset.pk,
        ),
    )


@login_required
@require_POST
def changeset_decide(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    membership, session, changeset = _changeset_for(
        request, slug, session_id, changeset_id, Action.CONTRIBUTE
    )
    try:
        if request.POST.get("all"):
            data = DecideAllForm(request.POST).cleaned()
            services.decisions_all(membership=membership, changeset=changeset, **data)
        else:
            data = DecisionForm(request.POST).cleaned()
            services.decision_set(membership=membership, changeset=changeset, **data)
    except ValidationError as error:
        messages.error(request, error_text(error))
    return _back(slug, session)


@login_required
@require_POST
def changeset_comment(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    membership, session, changeset = _changeset_for(
        request, slug, session_id, changeset_id, Action.CONTRIBUTE
    )
    try:
        data = CommentForm(request.POST).cleaned()
        services.comment_add(membership=membership, changeset=changeset, **data)
    except ValidationError as error:
        messages.error(request, error_text(error))
    return _back(slug, session)


def _thread_action(
    request: HttpRequest,
    slug: str,
    session_id: int,
    changeset_id: int,
    form: type[ActionForm],
    service: Callable[..., Any],
) -> tuple[RefactorSession, Any]:
    """A conversation action posted without the socket: the form, the service, the page."""
    membership, session, changeset = _changeset_for(
        request, slug, session_id, changeset_id, Action.CONTRIBUTE
    )
    try:
        data = form(request.POST).cleaned()
        return session, service(membership=membership, changeset=changeset, **data)
    except ValidationError as error:
        messages.error(request, error_text(error))
        return session, None


def _back_to(slug: str, session: RefactorSession, changeset_id: int) -> HttpResponse:
    """The page of the proposal the action was taken on (a reply to a carried thread is
    made from a later proposal's page)."""
    number = session.changesets.filter(pk=changeset_id).values_list("number", flat=True).first()
    response = _back(slug, session)
    if number is not None and number != latest_changeset(session).number:
        response["Location"] += f"?proposal={number}"
    return response


@login_required
@require_POST
def thread_reply(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    session, _ = _thread_action(
        request, slug, session_id, changeset_id, ReplyForm, services.comment_reply
    )
    return _back_to(slug, session, changeset_id)


@login_required
@require_POST
def thread_resolve(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    session, _ = _thread_action(
        request, slug, session_id, changeset_id, ThreadForm, services.thread_resolve
    )
    return _back_to(slug, session, changeset_id)


@login_required
@require_POST
def thread_reopen(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    session, _ = _thread_action(
        request, slug, session_id, changeset_id, ThreadForm, services.thread_reopen
    )
    return _back_to(slug, session, changeset_id)


@login_required
@require_POST
def suggestion_add(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    session, suggestion = _thread_action(
        request, slug, session_id, changeset_id, SuggestionForm, services.suggestion_add
    )
    if suggestion is not None:
        messages.success(request, "Suggestion added: someone who can review accepts it.")
    return _back_to(slug, session, changeset_id)


@login_required
@require_POST
def suggestion_accept(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    session, result = _thread_action(
        request,
        slug,
        session_id,
        changeset_id,
        SuggestionDecisionForm,
        services.suggestion_accept,
    )
    if result is not None:
        messages.success(request, f"Suggestion accepted: review proposal {result.number}.")
        return _back(slug, session)
    return _back_to(slug, session, changeset_id)


@login_required
@require_POST
def suggestion_dismiss(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    session, _ = _thread_action(
        request,
        slug,
        session_id,
        changeset_id,
        SuggestionDecisionForm,
        services.suggestion_dismiss,
    )
    return _back_to(slug, session, changeset_id)


@login_required
@require_POST
def changeset_apply(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    membership, session, changeset = _changeset_for(request, slug, session_id, changeset_id)
    try:
        data = ApplyForm(request.POST).cleaned()
        record = services.changeset_apply(
            membership=membership, changeset=changeset, site_url=site_url(request), **data
        )
    except PermissionDenied:
        raise
    except ValidationError as error:
        messages.error(request, error_text(error))
        return _back(slug, session)
    if record.state == Apply.State.APPLIED:
        messages.success(
            request, f"Applied as {record.result_commit[:10]} on {record.target_branch}."
        )
    else:
        messages.error(request, record.message)
    return _back(slug, session)


@login_required
@require_POST
def apply_push(request: HttpRequest, slug: str, session_id: int, apply_id: int) -> HttpResponse:
    membership, session = _session_for(request, slug, session_id, Action.APPLY_CHANGES)
    record = Apply.objects.filter(pk=apply_id, changeset__session=session).first()
    if record is None:
        raise Http404("No such apply.")
    try:
        services.apply_push_enqueue(membership=membership, record=record)
    except ValidationError as error:
        messages.error(request, error_text(error))
    else:
        messages.success(request, f"Pushing {record.target_branch} to the repository's origin…")
    return _back(slug, session)


@login_required
@require_POST
def refactor_regenerate(request: HttpRequest, slug: str, session_id: int) -> HttpResponse:
    membership, session = _session_for(request, slug, session_id, Action.CONTRIBUTE)
    try:
        services.refactor_regenerate(membership=membership, session=session)
    except ValidationError as error:
        messages.error(request, error_text(error))
    return _back(slug, session)


@login_required
@require_POST
def changeset_fix(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    membership, session, changeset = _changeset_for(
        request, slug, session_id, changeset_id, Action.CONTRIBUTE
    )
    try:
        services.refactor_fix_failed(membership=membership, changeset=changeset)
    except ValidationError as error:
        messages.error(request, error_text(error))
    return _back(slug, session)


@login_required
@require_http_methods(["GET", "POST"])
def changeset_edit(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    """Edit one file of a proposal by hand; the result is the session's next proposal."""
    membership, session, changeset = _changeset_for(
        request, slug, session_id, changeset_id, Action.CONTRIBUTE
    )
    path = request.POST.get("path") or request.GET.get("path", "")
    if request.method == "POST":
        try:
            data = EditFileForm(request.POST).cleaned()
            services.changeset_edit_file(membership=membership, changeset=changeset, **data)
        except ValidationError as error:
            messages.error(request, error_text(error))
        else:
            messages.success(request, f"{path} edited: review the new proposal.")
        return _back(slug, session)
    store = GitStore(session.repository.store_path)
    content = file_text(store, changeset.commit or session.base_commit, path)
    if content is None:
        raise Http404("No such text file in this proposal.")
    return render(
        request,
        "refactors/edit_file.html",
        _context(membership, session=session, changeset=changeset, path=path, content=content),
    )


@login_required
@require_GET
def changeset_patch(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    """The proposal (or, once applied, the applied commit) as a ``git am``-able patch."""
    _, session, changeset = _changeset_for(request, slug, session_id, changeset_id)
    if not changeset.commit or changeset.commit == session.base_commit:
        raise Http404("This proposal changes nothing.")
    applied = changeset.applies.filter(state=Apply.State.APPLIED).first()
    store = GitStore(session.repository.store_path)
    commit = applied.result_commit if applied else changeset.commit
    response = HttpResponse(store.format_patch(commit), content_type="text/x-patch")
    response["Content-Disposition"] = (
        f'attachment; filename="refactor-{session.pk}-{changeset.number}.patch"'
    )
    return response


@login_required
@require_GET
def changeset_archive(
    request: HttpRequest, slug: str, session_id: int, changeset_id: int
) -> HttpResponse:
    """The whole tree as proposed, as a .zip."""
    _, session, changeset = _changeset_for(request, slug, session_id, changeset_id)
    if not changeset.commit:
        raise Http404("This proposal has no tree yet.")
    store = GitStore(session.repository.store_path)
    response = StreamingHttpResponse(
        store.archive(changeset.commit, "zip"), content_type="application/zip"
    )
    name = f"{session.repository.slug}-refactor-{session.pk}-{changeset.number}.zip"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
