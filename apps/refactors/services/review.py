"""Review of a proposal: verdicts on hunks or whole files and comments on lines, live."""

from __future__ import annotations

from typing import Any

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
from apps.refactors.selectors import decision_fields, decision_seen, decisions_attributed
from apps.refactors.services.common import _git_failures_refused, _reviewable
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.diffs import WHOLE_FILE
from qweb.realtime import broadcast
from qweb.refusals import Refusal

MAX_COMMENT_CHARS = 10_000


# What a page sends as ``expected`` for a hunk or file nobody has decided.
UNDECIDED = "undecided"


class StaleDecision(Refusal):
    """A verdict made on a state that changed since the reviewer's page showed it.

    ``current`` is what is stored now (``selectors.decision_seen``: verdict, by, at), so the
    page can show it instead of what it believed.
    """

    def __init__(self, message: str, current: dict[str, Any]) -> None:
        super().__init__(message, code="stale", current=current)
        self.current = current


def _lock_decisions(changeset: ChangeSet) -> int:
    """Lock the proposal's row for its verdicts and bump their version; the new version.

    Every verdict on the proposal is serialized here: rows that do not exist yet (an
    undecided hunk) cannot be locked themselves.
    """
    version = (
        ChangeSet.objects.select_for_update()
        .filter(pk=changeset.pk)
        .values_list("decisions_version", flat=True)
        .get()
    )
    ChangeSet.objects.filter(pk=changeset.pk).update(decisions_version=version + 1)
    return version + 1


def _announce_decision(
    changeset: ChangeSet, path: str, hunk: int, fields: dict[str, Any], version: int
) -> None:
    broadcast(
        session_group(changeset.session_id),
        DecisionChanged(
            type="decision.changed",
            session_id=changeset.session_id,
            changeset_id=changeset.pk,
            path=path,
            hunk=hunk,
            verdict=fields["verdict"],
            by=fields["by"],
            by_id=fields["by_id"],
            at=fields["at"],
            version=version,
        ),
    )


def _refuse_stale(changeset: ChangeSet, path: str, hunk: int, hunks: int, expected: str) -> None:
    """Refuse a verdict made on a state other than the stored one, naming the stored one."""
    rows = decisions_attributed(changeset, path).get(path, {})
    current = {"path": path, **decision_seen(rows, hunk, hunks)}
    if (current["verdict"] or UNDECIDED) == expected:
        return
    what = "file" if hunk == WHOLE_FILE else "hunk"
    if current["verdict"] in HunkDecision.Verdict.values:
        shown = HunkDecision.Verdict(current["verdict"]).label.lower()
        now = f"{current['by']} {shown} this {what} in the meantime"
    elif current["verdict"] == "partial":
        now = f"this file's hunks were decided in the meantime (last by {current['by']})"
    else:
        now = f"this {what}'s verdict was cleared in the meantime"
    raise StaleDecision(f"Not saved: {now}. Look again and decide.", current)


@_git_failures_refused
def decision_set(
    *,
    membership: Membership,
    changeset: ChangeSet,
    path: str,
    hunk: int,
    verdict: str,
    expected: str = "",
) -> HunkDecision | None:
    """Accept or reject one hunk (or, with ``hunk`` -1, the whole file); "clear" undoes it.

    ``verdict`` is a ``HunkDecision.Verdict`` or ``HunkDecision.CLEAR`` (``DecisionForm``).
    ``expected`` is the verdict the reviewer's page showed ("undecided", "accept", "reject",
    for a file also "partial"); when given and no longer true, nothing is saved and
    ``StaleDecision`` names the stored verdict: of two reviewers deciding the same hunk at
    once the first is stored and the second sees it. The proposal's row is locked while the
    verdict is compared and written, so the comparison cannot race (no git call under it).
    """
    ensure_can(membership, Action.CONTRIBUTE)
    _reviewable(changeset)
    summary = next((item for item in changeset.files if item["path"] == path), None)
    if summary is None:
        raise ValidationError({"path": "No such file in this proposal."})
    if not (hunk == WHOLE_FILE or 0 <= hunk < summary["hunks"]):
        raise ValidationError({"hunk": "No such hunk in this file."})
    with transaction.atomic():
        version = _lock_decisions(changeset)
        if expected:
            _refuse_stale(changeset, path, hunk, summary["hunks"], expected)
        if hunk == WHOLE_FILE:
            # A verdict on the whole file replaces the verdicts on its hunks.
            HunkDecision.objects.filter(changeset=changeset, path=path).delete()
        else:
            HunkDecision.objects.filter(changeset=changeset, path=path, hunk=WHOLE_FILE).delete()
        decision = None
        now = timezone.now()
        if verdict == HunkDecision.CLEAR:
            HunkDecision.objects.filter(changeset=changeset, path=path, hunk=hunk).delete()
            fields = {
                **decision_fields(None),
                "verdict": HunkDecision.CLEAR,
                "by": membership.user.display_name,
                "by_id": membership.user_id,
                "at": now.isoformat(),
            }
        else:
            decision, _ = HunkDecision.objects.update_or_create(
                changeset=changeset,
                path=path,
                hunk=hunk,
                defaults={
                    "verdict": verdict,
                    "decided_by_id": membership.user_id,
                    "decided_at": now,
                },
            )
            decision.decided_by = membership.user
            fields = decision_fields(decision)
        _announce_decision(changeset, path, hunk, fields, version)
    return decision


@_git_failures_refused
def decisions_all(
    *,
    membership: Membership,
    changeset: ChangeSet,
    verdict: str,
    expected_version: int | None = None,
) -> int:
    """Accept or reject (a ``HunkDecision.Verdict``) every file of the proposal at once.

    ``expected_version`` is the ``decisions_version`` the reviewer's page showed; when given
    and any verdict was made since, nothing is saved (``StaleDecision``).
    """
    ensure_can(membership, Action.CONTRIBUTE)
    _reviewable(changeset)
    with transaction.atomic():
        version = _lock_decisions(changeset)
        if expected_version is not None and expected_version != version - 1:
            last = (
                HunkDecision.objects.filter(changeset=changeset)
                .select_related("decided_by")
                .order_by("-decided_at")
                .first()
            )
            by = f" (last by {decision_fields(last)['by']})" if last else ""
            raise StaleDecision(
                f"Not saved: verdicts changed since your page showed them{by}. "
                "Look again and decide.",
                {"path": "", "hunk": WHOLE_FILE, "version": version - 1},
            )
        HunkDecision.objects.filter(changeset=changeset).delete()
        now = timezone.now()
        created = HunkDecision.objects.bulk_create(
            HunkDecision(
                changeset=changeset,
                path=item["path"],
                hunk=WHOLE_FILE,
                verdict=verdict,
                decided_by=membership.user,
                decided_at=now,
            )
            for item in changeset.files
        )
        if created:
            # Path "": every file of the proposal.
            _announce_decision(changeset, "", WHOLE_FILE, decision_fields(created[0]), version)
    return len(changeset.files)


def comment_body(body: str) -> str:
    """A comment's or reply's text as stored; refused when empty or too long."""
    if not body.strip():
        raise ValidationError({"body": "Write a comment first."})
    if len(body) > MAX_COMMENT_CHARS:
        raise ValidationError(
            {"body": f"Comments are limited to {MAX_COMMENT_CHARS:,} characters."}
        )
    return body.strip()


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
    body = comment_body(body)
    comment = ReviewComment.objects.create(
        changeset=changeset,
        path=path,
        line=line,
        side=side,
        body=body,
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
