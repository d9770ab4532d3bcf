"""Reads for refactor sessions."""

from __future__ import annotations

from apps.refactors.models import ChangeSet, RefactorSession
from apps.workspaces.models import Membership
from apps.workspaces.selectors import membership_find


def refactor_session_access(
    *, user_id: int, session_id: int
) -> tuple[RefactorSession, Membership] | None:
    """The session and the user's current membership of its workspace, or None."""
    session = RefactorSession.objects.filter(pk=session_id).first()
    if session is None:
        return None
    membership = membership_find(user_id=user_id, workspace_id=session.workspace_id)
    return None if membership is None else (session, membership)


def changesets_being_written(*, session_id: int) -> list[tuple[int, int]]:
    """``(changeset id, job id)`` of the session's proposals the model is still writing."""
    return list(
        ChangeSet.objects.filter(
            session_id=session_id, state=ChangeSet.State.GENERATING, job__isnull=False
        ).values_list("pk", "job_id")
    )


def changeset_in_session(*, session: RefactorSession, changeset_id: object) -> ChangeSet | None:
    """A proposal of ``session`` by id; None for any other id or a non-integer."""
    if not isinstance(changeset_id, int) or isinstance(changeset_id, bool):
        return None
    return session.changesets.filter(pk=changeset_id).first()
