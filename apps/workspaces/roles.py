"""Workspace roles and what each may do: the one table every permission check reads."""

from __future__ import annotations

import enum

from django.db import models


class Role(models.TextChoices):
    # Declared from least to most powerful; ``rank`` relies on this order.
    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


ROLE_HELP = {
    Role.VIEWER: "Reads repositories and conversations; cannot post or change anything.",
    Role.MEMBER: "Imports repositories, chats and proposes refactors.",
    Role.ADMIN: "Manages members and invitations, applies refactors, deletes repositories.",
    Role.OWNER: "Everything, including renaming or deleting the workspace and managing owners.",
}


class Action(enum.Enum):
    """Things someone can do in a workspace, each with the least role that may do it."""

    VIEW = Role.VIEWER
    CONTRIBUTE = Role.MEMBER
    MANAGE_MEMBERS = Role.ADMIN
    MANAGE_WORKSPACE = Role.OWNER

    @property
    def minimum_role(self) -> Role:
        return self.value


def can(role: Role | str, action: Action) -> bool:
    return Role(role).at_least(action.minimum_role)


def assignable_roles(actor_role: Role | str) -> list[Role]:
    """Roles an actor may hand out: admins up to admin, owners any."""
    actor = Role(actor_role)
    if actor is Role.OWNER:
        return list(Role)
    if actor is Role.ADMIN:
        return [Role.VIEWER, Role.MEMBER, Role.ADMIN]
    return []
