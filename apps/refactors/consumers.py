"""A refactor session live: the proposal as the model writes it, and the review as it happens.

Everyone on the session's page sees the proposal stream (the job's events, tagged with the
proposal's ``changeset_id``), then each accept/reject (with who made it), comment, reply,
resolved or reopened thread, suggestion, review (approve / request changes) and apply as
people make them. A verdict made on a state the page no longer shows is refused with code
"stale" and the stored verdict (``current``).
Every incoming frame is authorized again against the current membership.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from channels.db import database_sync_to_async
from django.core.exceptions import ValidationError

from apps.generation.consumers import JobFollowerMixin
from apps.refactors import services
from apps.refactors.events import session_group
from apps.refactors.forms import (
    ChangeSetForm,
    CommentForm,
    DecideAllForm,
    DecisionForm,
    ReplyForm,
    ReviewForm,
    SuggestionDecisionForm,
    SuggestionForm,
    ThreadForm,
)
from apps.refactors.models import ChangeSet, RefactorSession
from apps.refactors.selectors import (
    changeset_in_session,
    changesets_being_written,
    latest_proposal_state,
    refactor_session_access,
)
from apps.workspaces.models import Membership
from apps.workspaces.roles import Action, can
from qweb.consumers import ActionConsumer, PresenceMixin
from qweb.forms import ActionForm


@database_sync_to_async
def _writing(session_id: int) -> list[tuple[int, int]]:
    return changesets_being_written(session_id=session_id)


@database_sync_to_async
def _latest(session_id: int) -> dict[str, int | str] | None:
    return latest_proposal_state(session_id=session_id)


def _capabilities(membership: Membership) -> dict[str, bool]:
    return {
        "can_review": can(membership.role, Action.CONTRIBUTE),
        "can_apply": can(membership.role, Action.APPLY_CHANGES),
    }


def _frame_changeset(session: RefactorSession, content: dict[str, Any]) -> ChangeSet:
    """The proposal of the session a frame names by ``changeset_id``."""
    changeset_id = ChangeSetForm.from_frame(content).cleaned()["changeset_id"]
    changeset = changeset_in_session(session=session, changeset_id=changeset_id)
    if changeset is None:
        raise ValidationError("No such proposal in this session.")
    return changeset


# Each action's input, checked as the page's form posts are.
_FORMS: dict[str, type[ActionForm]] = {
    "decide": DecisionForm,
    "decide_all": DecideAllForm,
    "comment": CommentForm,
    "review": ReviewForm,
    "reply": ReplyForm,
    "resolve": ThreadForm,
    "reopen": ThreadForm,
    "suggest": SuggestionForm,
    "suggestion_accept": SuggestionDecisionForm,
    "suggestion_dismiss": SuggestionDecisionForm,
    "stop": ActionForm,
}

# The services of the actions that only pass the form's values on.
_SERVICES: dict[str, Callable[..., object]] = {
    "decide": services.decision_set,
    "review": services.review_submit,
    "decide_all": services.decisions_all,
    "comment": services.comment_add,
    "reply": services.comment_reply,
    "resolve": services.thread_resolve,
    "reopen": services.thread_reopen,
    "suggest": services.suggestion_add,
    "suggestion_accept": services.suggestion_accept,
    "suggestion_dismiss": services.suggestion_dismiss,
}


class RefactorConsumer(PresenceMixin, JobFollowerMixin, ActionConsumer):
    owner_key = "changeset_id"
    actions = frozenset(_FORMS)

    def read_route(self, kwargs: dict[str, Any]) -> None:
        self.session_id = int(kwargs["session_id"])

    def load_target(self) -> tuple[RefactorSession, Membership] | None:
        assert self.user_id is not None
        return refactor_session_access(user_id=self.user_id, session_id=self.session_id)

    def group_of(self, target: tuple[RefactorSession, Membership]) -> str:
        return session_group(self.session_id)

    async def ready(self, target: tuple[RefactorSession, Membership]) -> None:
        # Read after joining the group: a page rendered before a change it has not heard of
        # (a proposal that became ready meanwhile) sees it here, and later ones as events.
        await self.send_json(
            {
                "type": "session.ready",
                "session_id": self.session_id,
                **_capabilities(target[1]),
                "latest": await _latest(self.session_id),
            }
        )
        for changeset_id, job_id in await _writing(self.session_id):
            await self.follow_job(changeset_id, job_id)

    async def access_kept(self, target: tuple[RefactorSession, Membership]) -> None:
        await self.send_json({"type": "access.changed", **_capabilities(target[1])})

    async def leave(self) -> None:
        await self.presence_exit()
        await self.unfollow_all()

    def perform(self, action: str, target: Any, content: dict[str, Any]) -> None:
        session, membership = target
        changeset = _frame_changeset(session, content)
        data = _FORMS[action].from_frame(content).cleaned()
        # A stale decision is a Refusal: its error carries what is stored (code "stale").
        self._perform(action, membership, changeset, data)

    def _perform(
        self, action: str, membership: Membership, changeset: ChangeSet, data: dict[str, Any]
    ) -> None:
        if action in _SERVICES:
            _SERVICES[action](membership=membership, changeset=changeset, **data)
        elif action == "stop":
            services.changeset_stop(membership=membership, changeset=changeset)

    async def changeset_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
        if event["state"] == ChangeSet.State.GENERATING and event["job_id"]:
            await self.follow_job(event["changeset_id"], event["job_id"])

    async def decision_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def review_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def comment_added(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def thread_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def suggestion_changed(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def apply_finished(self, event: dict[str, Any]) -> None:
        await self.send_json(event)
