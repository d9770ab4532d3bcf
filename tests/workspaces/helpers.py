from __future__ import annotations

from apps.accounts.models import User
from apps.workspaces.models import Membership, Workspace


def membership_of(user: User, workspace: Workspace) -> Membership:
    return Membership.objects.select_related("workspace", "user").get(
        user=user, workspace=workspace
    )
