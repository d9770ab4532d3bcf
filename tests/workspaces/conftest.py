from __future__ import annotations

from collections.abc import Callable

import pytest

from apps.accounts.models import User
from apps.workspaces import services
from apps.workspaces.models import Invitation, Membership, Workspace
from apps.workspaces.roles import Role
from tests.workspaces.helpers import membership_of

WorkspaceState = tuple[object, ...]


@pytest.fixture
def workspace_state(db) -> Callable[[Workspace], WorkspaceState]:
    """Everything a workspace action could change, to compare before and after a refusal."""

    def read(workspace: Workspace) -> WorkspaceState:
        return (
            tuple(Workspace.objects.filter(pk=workspace.pk).values_list("name", "slug")),
            tuple(
                Membership.objects.filter(workspace=workspace)
                .order_by("pk")
                .values_list("pk", "user_id", "role")
            ),
            tuple(
                Invitation.objects.filter(workspace=workspace)
                .order_by("pk")
                .values_list("pk", "email", "role", "accepted_at", "revoked_at")
            ),
            Membership.objects.count(),
            Invitation.objects.count(),
            User.objects.count(),
        )

    return read


@pytest.fixture
def invite(owner, workspace) -> Callable[..., tuple[Invitation, str]]:
    """Invite someone to ``workspace`` as its owner; returns the invitation and link token."""

    def create(email: str = "new@example.com", role: str = Role.MEMBER) -> tuple[Invitation, str]:
        return services.invitation_create(
            actor=membership_of(owner, workspace), email=email, role=role
        )

    return create
