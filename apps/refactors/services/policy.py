"""What a workspace lets through when changes are applied: its policy and the checks it sets."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.refactors.models import APPROVER_ROLES, ChangeSet, RefactorPolicy
from apps.refactors.selectors import (
    HeldFinding,
    approval_state,
    high_findings_held,
    policy_for,
)
from apps.refactors.services.common import FORBIDDEN_MODES
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.diffs import FileDiff
from qweb.lib.gitpaths import path_refusal

MAX_REQUIRED_APPROVALS = 20


def blocked_message(blocking: list[HeldFinding]) -> str:
    """Why an apply was blocked, naming where each finding is (the first five)."""
    one = len(blocking) == 1
    listed = "; ".join(str(held) for held in blocking[:5])
    if len(blocking) > 5:
        listed += f"; and {len(blocking) - 5} more"
    return (
        f"{len(blocking)} high-severity finding{'' if one else 's'} in the accepted changes, "
        f"which this workspace blocks: {listed}. Reject the hunk{'' if one else 's'} (or "
        f"file{'' if one else 's'}) that hold{'s it' if one else ' them'} to apply the rest."
    )


def findings_blocking(
    changeset: ChangeSet, accepted: dict[str, list[int] | None], policy: RefactorPolicy
) -> list[HeldFinding]:
    """The high findings that block applying these accepted hunks under this policy.

    Reviewers judge hunks, so a finding blocks only when its hunk is accepted.
    """
    if not policy.block_on_high_findings:
        return []
    return [held for held in high_findings_held(changeset) if held.applied_with(accepted)]


def check_approvals(changeset: ChangeSet, policy: RefactorPolicy) -> None:
    """Refuse applying a proposal the reviews do not let through, saying what is missing.

    It needs the policy's number of approvals (by reviewers with the approver role, the
    requester's own only where the policy counts it), and no reviewer who may approve may
    have asked for changes: a request for changes blocks until that reviewer approves or a
    new proposal replaces this one, whatever the number required.
    """
    refusal = approval_state(changeset, policy).refusal
    if refusal:
        raise ValidationError(f"Not applied: this proposal {refusal}.")


def policy_update(
    *,
    membership: Membership,
    block_on_high_findings: bool,
    allow_mode_changes: bool,
    allow_push: bool = False,
    required_approvals: int | None = None,
    requester_approval_counts: bool | None = None,
    approver_role: str | None = None,
) -> RefactorPolicy:
    """Admins choose what applying allows in their workspace (None: leave as it is)."""
    ensure_can(membership, Action.MANAGE_MEMBERS)
    policy = policy_for(membership.workspace_id)
    policy.block_on_high_findings = block_on_high_findings
    policy.allow_mode_changes = allow_mode_changes
    policy.allow_push = allow_push
    if required_approvals is not None:
        if not 0 <= required_approvals <= MAX_REQUIRED_APPROVALS:
            raise ValidationError(
                {"required_approvals": f"Require 0 to {MAX_REQUIRED_APPROVALS} approvals."}
            )
        policy.required_approvals = required_approvals
    if requester_approval_counts is not None:
        policy.requester_approval_counts = requester_approval_counts
    if approver_role is not None:
        if approver_role not in {role.value for role in APPROVER_ROLES}:
            raise ValidationError({"approver_role": "Choose member, admin or owner."})
        policy.approver_role = approver_role
    policy.updated_by_id = membership.user_id
    policy.updated_at = timezone.now()
    policy.save()
    return policy


def check_modes(files: list[FileDiff], policy: RefactorPolicy) -> None:
    """Refuse links, submodules, mode changes the policy forbids and paths git must not get."""
    for item in files:
        header = item.header
        for mode, what in FORBIDDEN_MODES.items():
            if f"new file mode {mode}" in header or f"new mode {mode}" in header:
                raise ValidationError(f"{item.path} would become {what}; qweb never applies that.")
        if ("old mode" in header or "new mode" in header) and not policy.allow_mode_changes:
            raise ValidationError(
                f"{item.path} changes its file mode; an admin must allow mode changes first."
            )
        for path in dict.fromkeys((item.old_path, item.path)):
            reason = path_refusal(path)
            if reason:
                raise ValidationError(f"{path} {reason}; qweb never writes there.")
