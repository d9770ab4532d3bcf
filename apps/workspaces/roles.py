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

    VIEW = "view"
    CONTRIBUTE = "contribute"
    APPLY_CHANGES = "apply_changes"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_WORKSPACE = "manage_workspace"

    @property
    def minimum_role(self) -> Role:
        return _MINIMUM_ROLE[self]


_MINIMUM_ROLE = {
    Action.VIEW: Role.VIEWER,
    Action.CONTRIBUTE: Role.MEMBER,
    # Applying writes the model's code into a repository: admins, after review.
    Action.APPLY_CHANGES: Role.ADMIN,
    Action.MANAGE_MEMBERS: Role.ADMIN,
    Action.MANAGE_WORKSPACE: Role.OWNER,
}


def can(role: Role | str, action: Action) -> bool:
    return Role(role).at_least(action.minimum_role)


def assignable_roles(actor_role: Role | str) -> list[Role]:
    """Roles an actor may hand out: up to their own, if they manage members at all (admins up
    to admin, owners any)."""
    actor = Role(actor_role)
    if not can(actor, Action.MANAGE_MEMBERS):
        return []
    return [role for role in Role if actor.at_least(role)]


def may_manage(actor_role: Role | str, target_role: Role | str) -> bool:
    """Whether someone who manages members may change or remove a member with ``target_role``:
    not one who outranks them, so only owners touch owners."""
    return Role(actor_role).at_least(Role(target_role))
