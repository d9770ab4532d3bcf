"""Live workspace events (members joining, leaving, changing role) for open pages."""

from __future__ import annotations

from typing import Any

from apps.workspaces.events import workspace_group
from apps.workspaces.models import Membership
from apps.workspaces.selectors import membership_find, workspace_id_for_member
from qweb.consumers import ActionConsumer


class WorkspaceConsumer(ActionConsumer):
    workspace_id: int | None = None

    def read_route(self, kwargs: dict[str, Any]) -> None:
        self.slug = kwargs["slug"]

    def load_target(self) -> Membership | None:
        assert self.user_id is not None
        if self.workspace_id is None:
            self.workspace_id = workspace_id_for_member(user_id=self.user_id, slug=self.slug)
            if self.workspace_id is None:
                return None
        # By id from then on: the socket belongs to the workspace it was opened for.
        return membership_find(user_id=self.user_id, workspace_id=self.workspace_id)

    def group_of(self, target: Membership) -> str:
        return workspace_group(target.workspace_id)

    async def member_joined(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def member_role_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def list_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def member_removed(self, event: dict[str, Any]) -> None:
        if event["user_id"] == self.user_id:
            await self.check_access()
            return
        await self.send_json(event)
