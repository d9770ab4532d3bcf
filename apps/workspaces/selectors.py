"""Reads for workspaces. Outsiders never learn that another workspace's objects exist."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.http import Http404

from apps.accounts.models import User
from apps.workspaces.models import Invitation, Membership, Workspace


def workspace_list_for_user(*, user: User) -> QuerySet[Workspace]:
    return (
        # Annotate before filtering: after it, the count would reuse the filter's join and
        # count only the user's own membership.
        Workspace.objects.annotate(member_count=Count("memberships", distinct=True))
        .filter(memberships__user=user)
        .order_by("name")
    )


def membership_get(*, user: User, slug: str) -> Membership:
    """The user's membership of the workspace ``slug``; ``Http404`` for anyone outside it."""
    if not user.is_authenticated:
        raise Http404("No such workspace.")
    try:
        return Membership.objects.select_related("workspace", "user").get(
            workspace__slug=slug, user=user
        )
    except Membership.DoesNotExist:
        raise Http404("No such workspace.") from None


def membership_find(*, user_id: int, workspace_id: int) -> Membership | None:
    """The membership of an active user, or None: what every open socket is checked against."""
    return (
        Membership.objects.select_related("workspace", "user")
        .filter(user_id=user_id, workspace_id=workspace_id, user__is_active=True)
        .first()
    )


def workspace_id_for_member(*, user_id: int, slug: str) -> int | None:
    """The id of workspace ``slug`` if the active user is a member of it; else None."""
    return (
        Membership.objects.filter(workspace__slug=slug, user_id=user_id, user__is_active=True)
        .values_list("workspace_id", flat=True)
        .first()
    )


def membership_list(*, workspace: Workspace) -> QuerySet[Membership]:
    return workspace.memberships.select_related("user").order_by("user__name", "user__email")


def invitation_list_pending(*, workspace: Workspace) -> QuerySet[Invitation]:
    return workspace.invitations.pending().select_related("invited_by").order_by("-created_at")
