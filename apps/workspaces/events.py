"""Typed websocket events for a workspace, and the name of its channel-layer group."""

from __future__ import annotations

from typing import Literal, TypedDict

from qweb.realtime import broadcast


def workspace_group(workspace_id: int) -> str:
    # Channels allows only [A-Za-z0-9._-] in group names, shorter than 100 characters.
    return f"workspace.{workspace_id}"


class MemberJoined(TypedDict):
    type: Literal["member.joined"]
    user_id: int
    name: str
    role: str


class MemberRoleChanged(TypedDict):
    type: Literal["member.role_changed"]
    user_id: int
    name: str
    role: str


class MemberRemoved(TypedDict):
    type: Literal["member.removed"]
    user_id: int
    name: str


class ListChanged(TypedDict):
    """Something a workspace page lists changed (its state, its approvals): pages re-read it."""

    type: Literal["list.changed"]
    kind: Literal["refactors"]
    id: int


WorkspaceEvent = MemberJoined | MemberRoleChanged | MemberRemoved | ListChanged


def workspace_broadcast(workspace_id: int, event: WorkspaceEvent) -> None:
    broadcast(workspace_group(workspace_id), event)
