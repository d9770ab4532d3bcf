"""The base of qweb's websocket consumers: close codes, error events, access checks.

Every consumer is an ``ActionConsumer``: it authenticates, loads what the socket shows
together with the user's *current* membership (``load_target``), and checks that again

- on every frame the browser sends,
- whenever the user's access may have changed: membership removed, role changed, user
  deactivated, workspace deleted (each announced to ``access.user.<id>`` after commit,
  which every socket of that user joins before its first check), and
- every ``QWEB_ACCESS_RECHECK_S`` seconds, for a notice the channel layer dropped.

Access gone → an error event, nothing more is forwarded, close 4403.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError

from qweb.ratelimit import RateLimited
from qweb.realtime import user_access_group
from qweb.refusals import Refusal
from qweb.views import error_text

# Close codes in the application range (4000-4999), so a page can tell why.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_ALLOWED = 4403
CLOSE_GONE = 4404

# No frame qweb expects comes near this (a chat question has at most 100,000 characters,
# under 700,000 even JSON-escaped); bigger ones get an error without being parsed.
MAX_FRAME_CHARS = 1024 * 1024
# No frame qweb expects nests deeper than a few levels.
MAX_FRAME_DEPTH = 16


class BadFrame(ValueError):
    """A frame that is not JSON qweb accepts; its message is what the browser is told."""


def decode_frame(text: str) -> Any:
    """Parse a frame; ``BadFrame`` for invalid JSON or nesting deeper than MAX_FRAME_DEPTH."""
    try:
        value = json.loads(text)
    except RecursionError:
        # The C parser gives up on deep nesting ([[[[…) with RecursionError, not ValueError.
        raise BadFrame(f"Frames nest at most {MAX_FRAME_DEPTH} levels.") from None
    except ValueError:
        raise BadFrame("Frames are JSON objects with a type.") from None
    # Iterative, so checking the depth cannot itself recurse too deeply.
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, dict | list):
                if depth + 1 > MAX_FRAME_DEPTH:
                    raise BadFrame(f"Frames nest at most {MAX_FRAME_DEPTH} levels.")
                stack.append((child, depth + 1))
    return value


def error_event(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The one shape of an error sent to a browser: ``{"type": "error", "code", "message"}``."""
    return {"type": "error", "code": code, "message": message, **extra}


class ActionConsumer(AsyncJsonWebsocketConsumer):
    """A consumer whose browser frames are actions on services, authorized frame by frame.

    Subclasses implement:

    - ``read_route(kwargs)``: take the ids from the URL;
    - ``load_target()``: synchronous; what the socket shows and the actor's current
      membership, or None when the user may not see it (any more);
    - ``workspace_of(target)`` and ``group_of(target)``: the workspace, and the group whose
      events the socket forwards;
    - ``ready(target)``: what to send once connected (a snapshot, a ready event);
    - ``perform(action, target, content)``: synchronous service code for one of ``actions``,
      run off the shared database thread so one slow action does not hold up everyone
      else's reads. Service refusals come back as error events;
    - optionally ``access_kept(target)``: the role changed but still allows the page;
    - optionally ``leave()``: more to undo when the socket goes (followed jobs, presence).
    """

    actions: frozenset[str] = frozenset()
    group: str | None = None
    user_id: int | None = None
    revoked = False
    _recheck: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ for subclasses

    def read_route(self, kwargs: dict[str, Any]) -> None:
        raise NotImplementedError

    def load_target(self) -> Any:
        raise NotImplementedError

    def group_of(self, target: Any) -> str | None:
        raise NotImplementedError

    async def ready(self, target: Any) -> None:
        """Sent once the socket is accepted."""

    def perform(self, action: str, target: Any, content: dict[str, Any]) -> None:
        raise NotImplementedError

    async def access_kept(self, target: Any) -> None:
        """The user's access changed but still allows this socket (e.g. a new role)."""

    async def leave(self) -> None:
        """Undo what the subclass joined besides ``group``."""

    async def presence_requested(self) -> bool:
        """The page asked to take part in presence; True when this consumer offers it."""
        return False

    # ------------------------------------------------------------------ connecting

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.user_id = user.pk
        self.read_route(self.scope["url_route"]["kwargs"])
        # Listen for access changes before the first check: a change committed in between
        # is then heard, never missed.
        await self.channel_layer.group_add(user_access_group(user.pk), self.channel_name)
        target = await database_sync_to_async(self.load_target)()
        if target is None:
            await self.channel_layer.group_discard(user_access_group(user.pk), self.channel_name)
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.group = self.group_of(target)
        if self.group:
            await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        self._recheck = asyncio.create_task(self._recheck_access())
        await self.ready(target)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        await self._leave_everything()
        await super().websocket_disconnect(message)

    async def _leave_everything(self) -> None:
        if self._recheck is not None and self._recheck is not asyncio.current_task():
            self._recheck.cancel()
        self._recheck = None
        if self.user_id is not None:
            await self.channel_layer.group_discard(
                user_access_group(self.user_id), self.channel_name
            )
        await self.leave()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            self.group = None

    # ------------------------------------------------------------------ access

    async def check_access(self) -> Any:
        """The current target, or None after revoking the socket."""
        if self.revoked:
            return None
        target = await database_sync_to_async(self.load_target)()
        if target is None:
            await self.revoke()
        return target

    async def revoke(self) -> None:
        """Access is gone: say so, forward nothing more, close 4403."""
        if self.revoked:
            return
        await self.send_json(error_event("forbidden", "You no longer have access."))
        self.revoked = True
        await self._leave_everything()
        await self.close(code=CLOSE_NOT_ALLOWED)

    async def access_changed(self, event: dict[str, Any]) -> None:
        target = await self.check_access()
        if target is not None:
            await self.access_kept(target)

    async def _recheck_access(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            while not self.revoked:
                await asyncio.sleep(settings.QWEB_ACCESS_RECHECK_S)
                await self.check_access()

    async def send_json(self, content: Any, close: bool = False) -> None:
        # Once access is gone nothing reaches the browser, whatever is still queued.
        if not self.revoked:
            await super().send_json(content, close=close)

    # ------------------------------------------------------------------ from the browser

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if self.revoked:
            return
        if text_data is None:
            await self.send_error("bad_frame", "Frames are JSON text, not binary.")
            return
        if len(text_data) > MAX_FRAME_CHARS:
            await self.send_error(
                "too_large", f"Frames are limited to {MAX_FRAME_CHARS:,} characters."
            )
            return
        try:
            content = decode_frame(text_data)
        except BadFrame as error:
            await self.send_error("bad_frame", str(error))
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        target = await self.check_access()
        if target is None:
            return
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error("bad_frame", "Frames are JSON objects with a type.")
            return
        action = content["type"]
        if action == "ping":
            await self.send_json({"type": "pong"})
            return
        if action == "presence" and await self.presence_requested():
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
        except Refusal as error:
            await self.send_error(error.code, error_text(error), action=action, **error.fields)
        except ValidationError as error:
            await self.send_error("invalid", error_text(error), action=action)

    async def send_error(self, code: str, message: str, **extra: Any) -> None:
        await self.send_json(error_event(code, message, **extra))


class PresenceMixin:
    """Who else has this page open: announced over the channel layer, nothing stored.

    On joining, a socket tells its group (``presence.join``); every other socket there tells
    its browser and answers the newcomer directly (``presence.here``); on leaving it says so
    (``presence.leave``). Works across server processes; a process that dies without saying
    goodbye leaves its people listed until the page reloads. Browsers see a random
    ``presence_id`` per socket, never the server's channel names.
    """

    presence_group: str | None = None
    channel_layer: Any
    channel_name: str
    send_json: Any  # the consumer's own

    @property
    def presence_id(self) -> str:
        if not hasattr(self, "_presence_id"):
            self._presence_id = secrets.token_urlsafe(12)
        return self._presence_id

    def _presence_identity(self) -> dict[str, Any]:
        user = self.scope["user"]  # type: ignore[attr-defined]
        return {
            "user_id": user.pk,
            "name": user.display_name,
            "initials": user.initials,
            "presence_id": self.presence_id,
        }

    @staticmethod
    def _for_browser(event: dict[str, Any], kind: str) -> dict[str, Any]:
        # reply_to is a channel name: server-side only.
        return {
            "type": kind,
            "user_id": event["user_id"],
            "name": event["name"],
            "initials": event["initials"],
            "presence_id": event["presence_id"],
        }

    async def presence_requested(self) -> bool:
        # A page that shows who is here asks once connected; other clients never see
        # presence events.
        group = self.group  # type: ignore[attr-defined]
        if group:
            await self.presence_enter(group)
        return True

    async def presence_enter(self, group: str) -> None:
        self.presence_group = group
        await self.channel_layer.group_send(
            group,
            {"type": "presence.join", "reply_to": self.channel_name, **self._presence_identity()},
        )

    async def presence_exit(self) -> None:
        if self.presence_group:
            group, self.presence_group = self.presence_group, None
            await self.channel_layer.group_send(
                group, {"type": "presence.leave", **self._presence_identity()}
            )

    async def presence_join(self, event: dict[str, Any]) -> None:
        # Only pages that show presence take part; other clients see nothing of it.
        if self.presence_group is None or event["presence_id"] == self.presence_id:
            return
        await self.send_json(self._for_browser(event, "presence.joined"))
        await self.channel_layer.send(
            event["reply_to"], {"type": "presence.here", **self._presence_identity()}
        )

    async def presence_here(self, event: dict[str, Any]) -> None:
        if self.presence_group is not None:
            await self.send_json(self._for_browser(event, "presence.here"))

    async def presence_leave(self, event: dict[str, Any]) -> None:
        if self.presence_group is not None and event["presence_id"] != self.presence_id:
            await self.send_json(self._for_browser(event, "presence.left"))


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any websocket path qweb does not serve: accepted and closed 4404, not a 500."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_GONE)
