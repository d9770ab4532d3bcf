"""Conversation on a proposal's diff: replies to comment threads, resolving and reopening
them, and suggestions of new lines for a hunk that become the next proposal when accepted.

A thread lives on the proposal it was started on and is shown on later ones (see
``selectors.file_threads``), so every action here names the thread or suggestion by id
within the session, from whichever proposal's page it is taken.
"""

from __future__ import annotations

from typing import Literal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.refactors.events import SuggestionChanged, ThreadChanged, session_group
from apps.refactors.models import ChangeSet, ReviewComment, Suggestion
from apps.refactors.selectors import (
    MAX_FILE_BYTES,
    file_text,
    latest_changeset,
    suggestion_in_session,
    thread_in_session,
)
from apps.refactors.services.build import changeset_edit_file
from apps.refactors.services.common import _git_failures_refused, _reviewable
from apps.refactors.services.review import comment_body
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.gitstore import GitStore
from qweb.realtime import broadcast

NO_SUCH_THREAD = "No such thread in this session."
NO_SUCH_SUGGESTION = "No such suggestion in this session."


def _thread(changeset: ChangeSet, thread_id: int) -> ReviewComment:
    thread = thread_in_session(session_id=changeset.session_id, thread_id=thread_id)
    if thread is None:
        raise ValidationError({"thread_id": NO_SUCH_THREAD})
    return thread


def _announce_thread(
    thread: ReviewComment,
    comment: ReviewComment,
    change: Literal["reply", "resolved", "reopened"],
    membership: Membership,
) -> None:
    broadcast(
        session_group(thread.changeset.session_id),
        ThreadChanged(
            type="thread.changed",
            session_id=thread.changeset.session_id,
            changeset_id=thread.changeset_id,
            thread_id=thread.pk,
            comment_id=comment.pk,
            path=thread.path,
            change=change,
            by=membership.user.display_name,
            at=timezone.now().isoformat(),
        ),
    )


def comment_reply(
    *, membership: Membership, changeset: ChangeSet, thread_id: int, body: str
) -> ReviewComment:
    """Reply to a thread (from the page of any proposal of its session that shows it)."""
    ensure_can(membership, Action.CONTRIBUTE)
    thread = _thread(changeset, thread_id)
    reply = ReviewComment.objects.create(
        changeset_id=thread.changeset_id,
        path=thread.path,
        line=thread.line,
        side=thread.side,
        body=comment_body(body),
        author_id=membership.user_id,
        thread=thread,
    )
    _announce_thread(thread, reply, "reply", membership)
    return reply


def _thread_set_resolved(
    membership: Membership, changeset: ChangeSet, thread_id: int, resolved: bool
) -> ReviewComment:
    ensure_can(membership, Action.CONTRIBUTE)
    thread = _thread(changeset, thread_id)
    with transaction.atomic():
        locked = ReviewComment.objects.select_for_update().get(pk=thread.pk)
        if locked.resolved == resolved:
            state = "resolved" if resolved else "open"
            raise ValidationError(f"This thread is already {state}.", code="stale")
        locked.resolved_at = timezone.now() if resolved else None
        locked.resolved_by_id = membership.user_id if resolved else None
        locked.save(update_fields=["resolved_at", "resolved_by"])
        change: Literal["resolved", "reopened"] = "resolved" if resolved else "reopened"
        _announce_thread(thread, locked, change, membership)
    locked.changeset = thread.changeset
    return locked


def thread_resolve(
    *, membership: Membership, changeset: ChangeSet, thread_id: int
) -> ReviewComment:
    """Mark a thread resolved, as who and when."""
    return _thread_set_resolved(membership, changeset, thread_id, True)


def thread_reopen(*, membership: Membership, changeset: ChangeSet, thread_id: int) -> ReviewComment:
    """Open a resolved thread again."""
    return _thread_set_resolved(membership, changeset, thread_id, False)


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _announce_suggestion(suggestion: Suggestion, membership: Membership) -> None:
    broadcast(
        session_group(suggestion.changeset.session_id),
        SuggestionChanged(
            type="suggestion.changed",
            session_id=suggestion.changeset.session_id,
            changeset_id=suggestion.changeset_id,
            suggestion_id=suggestion.pk,
            path=suggestion.path,
            state=suggestion.state,
            by=membership.user.display_name,
            at=timezone.now().isoformat(),
            result_changeset_id=suggestion.result_id,
        ),
    )


def _replacement(original: str, suggested: str) -> str:
    """The suggested lines as they go into the file: one newline at the end where the
    replaced lines had one (a textarea drops it)."""
    suggested = suggested.replace("\r\n", "\n")
    if suggested and original.endswith("\n") and not suggested.endswith("\n"):
        suggested += "\n"
    return suggested


@_git_failures_refused
def suggestion_add(
    *,
    membership: Membership,
    changeset: ChangeSet,
    path: str,
    start: int,
    length: int,
    suggested: str,
) -> Suggestion:
    """Suggest new text for lines ``start``..``start + length - 1`` of a file of the proposal."""
    ensure_can(membership, Action.CONTRIBUTE)
    _reviewable(changeset)
    summary = next((item for item in changeset.files if item["path"] == path), None)
    if summary is None or summary["status"] == "deleted" or summary["binary"]:
        raise ValidationError({"path": "No such text file in this proposal."})
    store = GitStore(changeset.session.repository.store_path)
    text = file_text(store, changeset.commit, path)
    lines = _lines(text or "")
    if not (start >= 1 and length >= 1 and start + length - 1 <= len(lines)):
        raise ValidationError({"start": "Suggest a change to lines of the proposed file."})
    if len(suggested.encode()) > MAX_FILE_BYTES:
        raise ValidationError({"suggested": "A suggestion is text of at most 2 MB."})
    original = "".join(lines[start - 1 : start - 1 + length])
    suggested = _replacement(original, suggested)
    if suggested == original:
        raise ValidationError({"suggested": "Change the lines first: this is what they say."})
    suggestion = Suggestion.objects.create(
        changeset=changeset,
        path=path,
        start=start,
        length=length,
        original=original,
        suggested=suggested,
        author_id=membership.user_id,
    )
    _announce_suggestion(suggestion, membership)
    return suggestion


def _suggestion(changeset: ChangeSet, suggestion_id: int) -> Suggestion:
    found = suggestion_in_session(session_id=changeset.session_id, suggestion_id=suggestion_id)
    if found is None:
        raise ValidationError({"suggestion_id": NO_SUCH_SUGGESTION})
    if found.state != Suggestion.State.OPEN:
        raise ValidationError(f"This suggestion was {found.get_state_display().lower()} already.")
    return found


def _claim(suggestion: Suggestion, membership: Membership, state: str) -> None:
    """Decide an open suggestion once: of two reviewers at once, the second is refused."""
    claimed = Suggestion.objects.filter(pk=suggestion.pk, state=Suggestion.State.OPEN).update(
        state=state, decided_by_id=membership.user_id, decided_at=timezone.now()
    )
    if not claimed:
        raise ValidationError("This suggestion was decided in the meantime.", code="stale")
    suggestion.state = state


@_git_failures_refused
def suggestion_accept(
    *, membership: Membership, changeset: ChangeSet, suggestion_id: int
) -> ChangeSet:
    """Accept a suggestion: the session's next proposal, the latest with those lines replaced.

    Refused (nothing stored) when the latest proposal no longer has the suggestion's
    original lines where it replaces them: the proposal moved on since it was made.
    """
    ensure_can(membership, Action.CONTRIBUTE)
    suggestion = _suggestion(changeset, suggestion_id)
    latest = latest_changeset(suggestion.changeset.session)
    assert latest is not None
    _reviewable(latest)
    store = GitStore(latest.session.repository.store_path)
    lines = _lines(file_text(store, latest.commit, suggestion.path) or "")
    first, end = suggestion.start - 1, suggestion.start - 1 + suggestion.length
    if "".join(lines[first:end]) != suggestion.original:
        last = suggestion.start + suggestion.length - 1
        raise ValidationError(
            f"Not accepted: proposal {latest.number} no longer has the lines this suggestion "
            f"replaces ({suggestion.path}, lines {suggestion.start}–{last}). "
            "Suggest the change again on the latest proposal.",
            code="stale",
        )
    content = "".join([*lines[:first], suggestion.suggested, *lines[end:]])
    _claim(suggestion, membership, Suggestion.State.ACCEPTED)
    author = suggestion.author.display_name if suggestion.author else "a former member"
    try:
        # The hand-edit path: one way a reviewer's text becomes a proposal.
        result = changeset_edit_file(
            membership=membership,
            changeset=latest,
            path=suggestion.path,
            content=content,
            why=f"as {author} suggested",
        )
    except ValidationError:
        Suggestion.objects.filter(pk=suggestion.pk).update(
            state=Suggestion.State.OPEN, decided_by=None, decided_at=None
        )
        raise
    Suggestion.objects.filter(pk=suggestion.pk).update(result=result)
    suggestion.result = result
    _announce_suggestion(suggestion, membership)
    return result


def suggestion_dismiss(
    *, membership: Membership, changeset: ChangeSet, suggestion_id: int
) -> Suggestion:
    """Dismiss a suggestion: it stays on the page, marked dismissed by whom."""
    ensure_can(membership, Action.CONTRIBUTE)
    suggestion = _suggestion(changeset, suggestion_id)
    _claim(suggestion, membership, Suggestion.State.DISMISSED)
    _announce_suggestion(suggestion, membership)
    return suggestion
