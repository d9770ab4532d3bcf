"""The one permission helper every workspace-scoped view goes through."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from apps.workspaces.models import Membership
from apps.workspaces.roles import Action, can
from apps.workspaces.selectors import membership_get


def require_membership(request: HttpRequest, slug: str, action: Action = Action.VIEW) -> Membership:
    """The requester's membership, checked for ``action``.

    Someone outside the workspace gets 404 (its existence is not confirmed); a member whose
    role is too low gets 403 with the reason.
    """
    membership = membership_get(user=request.user, slug=slug)  # type: ignore[arg-type]
    ensure_can(membership, action)
    return membership


def ensure_can(membership: Membership, action: Action) -> None:
    if not can(membership.role, action):
        raise PermissionDenied(
            f"Your role ({membership.get_role_display()}) cannot do this; "
            f"it needs {action.minimum_role.label} or above."
        )


def page_context(membership: Membership, **extra: object) -> dict[str, object]:
    """What every workspace page's template reads: the membership and what it may do."""
    return {
        "membership": membership,
        "workspace": membership.workspace,
        "can_contribute": can(membership.role, Action.CONTRIBUTE),
        "can_apply": can(membership.role, Action.APPLY_CHANGES),
        "can_manage": can(membership.role, Action.MANAGE_MEMBERS),
        **extra,
    }
