"""A refactor session live: the proposal as the model writes it, and the review as it happens.

Everyone on the session's page sees the proposal stream (the job's events, tagged with the
proposal's ``changeset_id``), then each accept/reject, comment and apply as people make
them. Every incoming frame is authorized again against the current membership.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from apps.generation.consumers import JobFollowerMixin
from apps.refactors import services
from apps.refactors.events import session_group
from apps.refactors.models import ChangeSet, RefactorSession
from apps.workspaces.models import Membership
from apps.workspaces.roles import Action, can
from qweb.consumers import (
    CLOSE_NOT_ALLOWED,
    CLOSE_UNAUTHENTICATED,
    ActionConsumer,
    PresenceMixin,
)


@database_sync_to_async
def _authorize(user_id: int, session_id: int) -> dict[str, Any] | None:
    session = RefactorSession.objects.filter(pk=session_id).first()
    if session is None:
        return None
    membership = Membership.objects.filter(
        workspace_id=session.workspace_id, user_id=user_id
    ).first()
    if membership is None:
        return None
    writing = list(
        session.changesets.filter(state=ChangeSet.State.GENERATING, job__isnull=False).values_list(
            "pk", "job_id"
        )
    )
    return {
        "can_review": can(membership.role, Action.CONTRIBUTE),
        "can_apply": can(membership.role, Action.APPLY_CHANGES),
        "writing": writing,
    }


def _changeset_of(session: RefactorSession, content: dict[str, Any]) -> ChangeSet:
    changeset_id = content.get("changeset_id")
    changeset = (
        session.changesets.filter(pk=changeset_id).first()
        if isinstance(changeset_id, int)
        else None
    )
    if changeset is None:
        from django.core.exceptions import ValidationError

        raise ValidationError("No such proposal in this session.")
    return changeset


class RefactorConsumer(PresenceMixin, JobFollowerMixin, ActionConsumer):
    group: str | None = None
    owner_key = "changeset_id"
    actions = frozenset({"decide", "decide_all", "comment", "stop"})

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.session_id = int(self.scope["url_route"]["kwargs"]["session_id"])
        self.user_id = user.pk
        found = await _authorize(user.pk, self.session_id)
        if found is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.group = session_group(self.session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_json(
            {
                "type": "session.ready",
                "session_id": self.session_id,
                "can_review": found["can_review"],
                "can_apply": found["can_apply"],
            }
        )
        for changeset_id, job_id in found["writing"]:
            await self.follow_job(changeset_id, job_id)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.presence_exit()
            await self.channel_layer.group_discard(self.group, self.channel_name)
        await self.unfollow_all()

    def load_target(self) -> tuple[RefactorSession, Membership] | None:
        session = RefactorSession.objects.filter(pk=self.session_id).first()
        if session is None:
            return None
        membership = (
            Membership.objects.select_related("user")
            .filter(workspace_id=session.workspace_id, user_id=self.user_id)
            .first()
        )
        return None if membership is None else (session, membership)

    def perform(self, action: str, target: Any, content: dict[str, Any]) -> None:
        session, membership = target
        changeset = _changeset_of(session, content)
        if action == "decide":
            services.decision_set(
                membership=membership,
                changeset=changeset,
                path=content.get("path"),
                hunk=content.get("hunk"),
                verdict=content.get("verdict"),
            )
        elif action == "decide_all":
            services.decisions_all(
                membership=membership, changeset=changeset, verdict=content.get("verdict")
            )
        elif action == "comment":
            services.comment_add(
                membership=membership,
                changeset=changeset,
                path=content.get("path"),
                line=content.get("line"),
                side=content.get("side", "new"),
                body=content.get("body"),
            )
        elif action == "stop":
            services.changeset_stop(membership=membership, changeset=changeset)

    async def changeset_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
        if event["state"] == ChangeSet.State.GENERATING and event["job_id"]:
            await self.follow_job(event["changeset_id"], event["job_id"])

    async def decision_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def comment_added(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def apply_finished(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
