"""Review of a proposal: verdicts on hunks or whole files and comments on lines, live."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.refactors.events import (
    CommentAdded,
    DecisionChanged,
    session_group,
)
from apps.refactors.models import (
    ChangeSet,
    HunkDecision,
    ReviewComment,
)
from apps.refactors.services.common import _git_failures_refused, _reviewable
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.diffs import WHOLE_FILE
from qweb.realtime import broadcast

MAX_COMMENT_CHARS = 10_000


def _announce_decision(
    changeset: ChangeSet, membership: Membership, path: str, hunk: int, verdict: str
) -> None:
    broadcast(
        session_group(changeset.session_id),
        DecisionChanged(
            type="decision.changed",
            session_id=changeset.session_id,
            changeset_id=changeset.pk,
            path=path,
            hunk=hunk,
            verdict=verdict,
            by=membership.user.display_name,
        ),
    )


@_git_failures_refused
def decision_set(
    *, membership: Membership, changeset: ChangeSet, path: str, hunk: int, verdict: str
) -> HunkDecision | None:
    """Accept or reject one hunk (or, with ``hunk`` -1, the whole file); "clear" undoes it.

    ``verdict`` is a ``HunkDecision.Verdict`` or ``HunkDecision.CLEAR`` (``DecisionForm``).
    """
    ensure_can(membership, Action.CONTRIBUTE)
    _reviewable(changeset)
    summary = next((item for item in changeset.files if item["path"] == path), None)
    if summary is None:
        raise ValidationError({"path": "No such file in this proposal."})
    if not (hunk == WHOLE_FILE or 0 <= hunk < summary["hunks"]):
        raise ValidationError({"hunk": "No such hunk in this file."})
    with transaction.atomic():
        if hunk == WHOLE_FILE:
            # A verdict on the whole file replaces the verdicts on its hunks.
            HunkDecision.objects.filter(changeset=changeset, path=path).delete()
        else:
            HunkDecision.objects.filter(changeset=changeset, path=path, hunk=WHOLE_FILE).delete()
        decision = None
        if verdict == HunkDecision.CLEAR:
            HunkDecision.objects.filter(changeset=changeset, path=path, hunk=hunk).delete()
        else:
            decision, _ = HunkDecision.objects.update_or_create(
                changeset=changeset,
                path=path,
                hunk=hunk,
                defaults={
                    "verdict": verdict,
                    "decided_by_id": membership.user_id,
                    "decided_at": timezone.now(),
                },
            )
        _announce_decision(changeset, membership, path, hunk, verdict)
    return decision


@_git_failures_refused
def decisions_all(*, membership: Membership, changeset: ChangeSet, verdict: str) -> int:
    """Accept or reject (a ``HunkDecision.Verdict``) every file of the proposal at once."""
    ensure_can(membership, Action.CONTRIBUTE)
    _reviewable(changeset)
    with transaction.atomic():
        HunkDecision.objects.filter(changeset=changeset).delete()
        HunkDecision.objects.bulk_create(
            HunkDecision(
                changeset=changeset,
                path=item["path"],
                hunk=WHOLE_FILE,
                verdict=verdict,
                decided_by_id=membership.user_id,
            )
            for item in changeset.files
        )
        # Path "": every file of the proposal.
        _announce_decision(changeset, membership, "", WHOLE_FILE, verdict)
    return len(changeset.files)


@_git_failures_refused
def comment_add(
    *,
    membership: Membership,
    changeset: ChangeSet,
    path: str,
    line: int,
    body: str,
    side: str = ReviewComment.Side.NEW,
) -> ReviewComment:
    """Comment on a line of the proposal's diff; everyone on the page sees it at once."""
    ensure_can(membership, Action.CONTRIBUTE)
    if changeset.state != ChangeSet.State.READY:
        raise ValidationError("This proposal is not ready for review.")
    if not any(item["path"] == path for item in changeset.files):
        raise ValidationError({"path": "No such file in this proposal."})
    # The column holds at most 2**31 - 1; a bigger number is no line.
    if not 1 <= line < 2**31:
        raise ValidationError({"line": "Comment on a line of the diff."})
    if not body.strip():
        raise ValidationError({"body": "Write a comment first."})
    if len(body) > MAX_COMMENT_CHARS:
        raise ValidationError(
            {"body": f"Comments are limited to {MAX_COMMENT_CHARS:,} characters."}
        )
    comment = ReviewComment.objects.create(
        changeset=changeset,
        path=path,
        line=line,
        side=side,
        body=body.strip(),
        author_id=membership.user_id,
    )
    broadcast(
        session_group(changeset.session_id),
        CommentAdded(
            type="comment.added",
            session_id=changeset.session_id,
            changeset_id=changeset.pk,
            comment_id=comment.pk,
            path=path,
            line=line,
            side=side,
        ),
    )
    return comment
