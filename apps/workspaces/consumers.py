"""Live workspace events (members joining, leaving, changing role) for open pages."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from apps.workspaces.events import workspace_group
from apps.workspaces.models import Membership
from apps.workspaces.selectors import membership_find, membership_get
from qweb.consumers import JsonConsumer

# Close codes in the application range (4000-4999), so the page can tell why.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_A_MEMBER = 4403


@database_sync_to_async
def _membership_for(user: Any, slug: str) -> Membership | None:
    try:
        return membership_get(user=user, slug=slug)
    except Exception:  # Http404 for outsiders: the same answer as for a missing workspace.
        return None


@database_sync_to_async
def _still_member(user_id: int, workspace_id: int) -> bool:
    return membership_find(user_id=user_id, workspace_id=workspace_id) is not None


class WorkspaceConsumer(JsonConsumer):
    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        membership = await _membership_for(user, self.scope["url_route"]["kwargs"]["slug"])
        if membership is None:
            await self.close(code=CLOSE_NOT_A_MEMBER)
            return
        self.user_id = user.pk
        self.workspace_id = membership.workspace_id
        self.group = workspace_group(membership.workspace_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # Every incoming event is authorized again: a member removed a moment ago is refused.
        if not await _still_member(self.user_id, self.workspace_id):
            await self.close(code=CLOSE_NOT_A_MEMBER)
            return
        if not isinstance(content, dict) or content.get("type") != "ping":
            await self.send_json({"type": "error", "message": "Unknown event."})
            return
        await self.send_json({"type": "pong"})

    async def member_joined(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def member_role_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def member_removed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
        if event["user_id"] == self.user_id:
            await self.close(code=CLOSE_NOT_A_MEMBER)
