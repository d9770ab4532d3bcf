"""What a workspace lets through when changes are applied: its policy and the checks it sets."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.refactors.models import ChangeSet, RefactorPolicy
from apps.refactors.selectors import HeldFinding, high_findings_held, policy_for
from apps.refactors.services.common import FORBIDDEN_MODES
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.diffs import FileDiff
from qweb.lib.gitpaths import path_refusal


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


def policy_update(
    *,
    membership: Membership,
    block_on_high_findings: bool,
    allow_mode_changes: bool,
    allow_push: bool = False,
) -> RefactorPolicy:
    """Admins choose what applying allows in their workspace."""
    ensure_can(membership, Action.MANAGE_MEMBERS)
    policy = policy_for(membership.workspace_id)
    policy.block_on_high_findings = block_on_high_findings
    policy.allow_mode_changes = allow_mode_changes
    policy.allow_push = allow_push
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
