"""Approvals: reviewers approve a proposal or ask for changes; the policy counts them."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.refactors.events import ReviewChanged, session_group
from apps.refactors.models import ChangeSet, ProposalReview
from apps.refactors.selectors import approval_state, approver_role, may_approve, policy_for
from apps.refactors.services.common import _announce_listed, _reviewable
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.realtime import broadcast

MAX_SUMMARY_CHARS = 10_000


def review_submit(
    *, membership: Membership, changeset: ChangeSet, state: str, summary: str = ""
) -> ProposalReview:
    """Approve the latest proposal or request changes (``ProposalReview.State``), with an
    optional summary; it replaces the reviewer's earlier review of this proposal."""
    ensure_can(membership, Action.CONTRIBUTE)
    policy = policy_for(membership.workspace_id)
    if not may_approve(membership, policy):
        role = approver_role(policy).label.lower()
        raise PermissionDenied(f"In this workspace only a {role} or above reviews proposals.")
    if state not in ProposalReview.State.values:
        raise ValidationError({"state": "Approve or request changes."})
    summary = summary.strip()
    if len(summary) > MAX_SUMMARY_CHARS:
        raise ValidationError(
            {"summary": f"Summaries are limited to {MAX_SUMMARY_CHARS:,} characters."}
        )
    with transaction.atomic():
        # The proposal's row, locked: a review and a regenerate or a second tab of the same
        # reviewer are serialized, and the proposal checked afresh under the lock.
        locked = (
            ChangeSet.objects.select_for_update().select_related("session").get(pk=changeset.pk)
        )
        _reviewable(locked)
        review, _ = ProposalReview.objects.update_or_create(
            changeset=locked,
            reviewer_id=membership.user_id,
            defaults={"state": state, "summary": summary, "created_at": timezone.now()},
        )
        review.reviewer = membership.user
        standing = approval_state(locked, policy)
        broadcast(
            session_group(locked.session_id),
            ReviewChanged(
                type="review.changed",
                session_id=locked.session_id,
                changeset_id=locked.pk,
                review_id=review.pk,
                reviewer=membership.user.display_name,
                reviewer_id=membership.user_id,
                state=state,
                summary=summary,
                at=review.created_at.isoformat(),
                approval=standing.as_event(),
            ),
        )
        _announce_listed(locked.session_id)
    return review
