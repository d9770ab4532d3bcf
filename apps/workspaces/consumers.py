"""Live workspace events (members joining, leaving, changing role) for open pages."""

from __future__ import annotations

from typing import Any

from apps.workspaces.events import workspace_group
from apps.workspaces.models import Membership
from apps.workspaces.selectors import membership_find
from qweb.consumers import ActionConsumer


class WorkspaceConsumer(ActionConsumer):
    workspace_id: int | None = None

    def read_route(self, kwargs: dict[str, Any]) -> None:
        self.slug = kwargs["slug"]

    def load_target(self) -> Membership | None:
        if self.workspace_id is None:
            found = (
                Membership.objects.filter(
                    workspace__slug=self.slug, user_id=self.user_id, user__is_active=True
                )
                .values_list("workspace_id", flat=True)
                .first()
            )
            if found is None:
                return None
            self.workspace_id = found
        # By id from then on: the socket belongs to the workspace it was opened for.
        assert self.user_id is not None
        return membership_find(user_id=self.user_id, workspace_id=self.workspace_id)

    def group_of(self, target: Membership) -> str:
        return workspace_group(target.workspace_id)

    async def member_joined(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def member_role_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def member_removed(self, event: dict[str, Any]) -> None:
        if event["user_id"] == self.user_id:
            await self.check_access()
            return
        await self.send_json(event)
