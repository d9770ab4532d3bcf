"""Plain factories for test data: one function per model, keyword arguments for overrides."""

from __future__ import annotations

import itertools

from apps.accounts.models import User
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.roles import Role

_counter = itertools.count(1)
PASSWORD = "correct-horse-battery"


def user_create(*, email: str | None = None, name: str = "", password: str = PASSWORD) -> User:
    n = next(_counter)
    return User.objects.create_user(
        email or f"user{n}@example.com", password, name=name or f"User {n}"
    )


def workspace_create(*, name: str | None = None, slug: str | None = None) -> Workspace:
    n = next(_counter)
    return Workspace.objects.create(name=name or f"Team {n}", slug=slug or f"team-{n}")


def membership_create(
    *, workspace: Workspace, user: User | None = None, role: Role = Role.MEMBER
) -> Membership:
    return Membership.objects.create(workspace=workspace, user=user or user_create(), role=role)
