from __future__ import annotations

from django.core.management.base import CommandError

from apps.workspaces.models import Membership
from apps.workspaces.roles import Role


def acting_membership(slug: str, email: str | None) -> Membership:
    """The membership a command acts as: ``--as`` a member, or the workspace's first owner."""
    memberships = Membership.objects.select_related("workspace", "user").filter(
        workspace__slug=slug
    )
    if not memberships.exists():
        raise CommandError(f"No workspace with the address {slug!r}.")
    if email:
        membership = memberships.filter(user__email__iexact=email).first()
        if membership is None:
            raise CommandError(f"{email} is not a member of {slug}.")
        return membership
    owner = memberships.filter(role=Role.OWNER).order_by("created_at").first()
    if owner is None:
        raise CommandError(f"Workspace {slug} has no owner; pass --as EMAIL.")
    return owner
