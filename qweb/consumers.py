"""The base of qweb's websocket consumers: JSON in and out, malformed frames answered."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import PermissionDenied, ValidationError

from qweb.ratelimit import RateLimited
from qweb.views import error_text

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_GONE = 4404

# No frame qweb expects comes near this (a chat question has at most 100,000 characters,
# under 700,000 even JSON-escaped); bigger ones get an error without being parsed.
MAX_FRAME_CHARS = 1024 * 1024


class JsonConsumer(AsyncJsonWebsocketConsumer):
    """Binary frames and invalid JSON reach ``receive_json`` as ``None`` instead of crashing;
    oversized frames are refused without being parsed."""

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data is not None and len(text_data) > MAX_FRAME_CHARS:
            await self.send_json(
                {
                    "type": "error",
                    "code": "too_large",
                    "message": f"Frames are limited to {MAX_FRAME_CHARS:,} characters.",
                }
            )
            return
        content = await self.decode_json(text_data) if text_data else None
        await self.receive_json(content, **kwargs)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None


class ActionConsumer(JsonConsumer):
    """A consumer whose browser frames are actions on services, authorized frame by frame.

    Subclasses name their ``actions``, load the actor's current membership and target in
    ``load_target`` (None: access is gone → error and close 4403), and run an action in
    ``perform`` — synchronous service code, run off the shared database thread so one slow
    action does not hold up everyone else's reads. Service refusals come back as
    ``{"type": "error", "code": ..., "message": ...}``.
    """

    actions: frozenset[str] = frozenset()

    def load_target(self) -> Any:
        raise NotImplementedError

    def perform(self, action: str, target: Any, content: dict[str, Any]) -> None:
        raise NotImplementedError

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        target = await database_sync_to_async(self.load_target)()
        if target is None:
            await self.send_error("forbidden", "You no longer have access.")
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("bad_frame", "Frames are JSON objects with a type.")
            return
        action = content["type"]
        if action == "ping":
            await self.send_json({"type": "pong"})
            return
        if action == "presence" and isinstance(self, PresenceMixin):
            # A page that shows who is here asks once connected; other clients never see
            # presence events.
            await self.presence_enter(self.group)  # type: ignore[attr-defined]
            return
        if action not in self.actions:
            await self.send_error("bad_frame", f"Unknown event {action[:40]!r}.")
            return
        try:
            await database_sync_to_async(self.perform, thread_sensitive=False)(
                action, target, content
            )
        except RateLimited as error:
            await self.send_error("rate_limited", error_text(error), retry_after=error.retry_after)
        except PermissionDenied as error:
            await self.send_error("forbidden", str(error) or "You cannot do this.")
        except ValidationError as error:
            await self.send_error("invalid", error_text(error), action=action)

    async def send_error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **extra})


class PresenceMixin:
    """Who else has this page open: announced over the channel layer, nothing stored.

    On joining, a socket tells its group (``presence.join``); every other socket there tells
    its browser and answers the newcomer directly (``presence.here``); on leaving it says so
    (``presence.leave``). Works across server processes; a process that dies without saying
    goodbye leaves its people listed until the page reloads.
    """

    presence_group: str | None = None
    group: str | None
    channel_layer: Any
    channel_name: str
    send_json: Any  # the consumer's own

    def _presence_identity(self) -> dict[str, Any]:
        user = self.scope["user"]  # type: ignore[attr-defined]
        return {
            "user_id": user.pk,
            "name": user.display_name,
            "initials": user.initials,
            "channel": self.channel_name,
        }

    async def presence_enter(self, group: str) -> None:
        self.presence_group = group
        await self.channel_layer.group_send(
            group, {"type": "presence.join", **self._presence_identity()}
        )

    async def presence_exit(self) -> None:
        if self.presence_group:
            await self.channel_layer.group_send(
                self.presence_group, {"type": "presence.leave", **self._presence_identity()}
            )

    async def presence_join(self, event: dict[str, Any]) -> None:
        # Only pages that show presence take part; other clients see nothing of it.
        if self.presence_group is None or event["channel"] == self.channel_name:
            return
        await self.send_json({**event, "type": "presence.joined"})
        await self.channel_layer.send(
            event["channel"], {"type": "presence.here", **self._presence_identity()}
        )

    async def presence_here(self, event: dict[str, Any]) -> None:
        if self.presence_group is not None:
            await self.send_json({**event, "type": "presence.here"})

    async def presence_leave(self, event: dict[str, Any]) -> None:
        if self.presence_group is not None and event["channel"] != self.channel_name:
            await self.send_json({**event, "type": "presence.left"})
