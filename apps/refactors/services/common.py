"""What every step of a refactor shares: limits, git reads, the session's state and news."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.refactors.events import (
    ChangeSetChanged,
    session_group,
)
from apps.refactors.models import (
    ChangeSet,
    RefactorSession,
)
from apps.refactors.selectors import latest_changeset
from apps.repos.models import IndexedCommit, Repository
from apps.workspaces.events import ListChanged, workspace_broadcast
from qweb.lib.gitstore import GitStore, GitStoreError
from qweb.realtime import broadcast

logger = logging.getLogger(__name__)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _git_failures_refused(service: Callable[_P, _R]) -> Callable[_P, _R]:
    """A git failure in a service someone called becomes a refusal that names git's reason.

    The page shows it like any refusal (never a server error) and the service's transaction
    rolls back; the failure is logged, since a store that fails needs an administrator.
    """

    @functools.wraps(service)
    def refusing(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return service(*args, **kwargs)
        except GitStoreError as error:
            logger.exception("%s: git failed", service.__name__)
            raise ValidationError(f"The repository's git store failed: {error.message}") from None

    return refusing


FORBIDDEN_MODES = {"120000": "a symbolic link", "160000": "a submodule"}
NO_EDITS_MESSAGE = "The model answered without proposing any edits."


def in_scope(path: str, scope: list[str]) -> bool:
    return not scope or any(path == item or path.startswith(item + "/") for item in scope)


def _indexed(repository: Repository, sha: str) -> IndexedCommit:
    indexed = IndexedCommit.objects.filter(
        repository=repository, sha=sha, state=IndexedCommit.State.READY
    ).first()
    if indexed is None:
        raise ValidationError(
            {"ref": f"Commit {sha[:12]} is still being indexed; start the refactor when it is."}
        )
    return indexed


def _session_state(session_id: int, state: str) -> None:
    RefactorSession.objects.filter(pk=session_id).update(state=state, updated_at=timezone.now())
    _announce_listed(session_id)


def _announce_listed(session_id: int) -> None:
    """Tell the workspace's open pages that this session's line in the list changed."""
    workspace_id = RefactorSession.objects.values_list("workspace_id", flat=True).get(pk=session_id)
    workspace_broadcast(
        workspace_id, ListChanged(type="list.changed", kind="refactors", id=session_id)
    )


def _announce(changeset: ChangeSet) -> None:
    broadcast(
        session_group(changeset.session_id),
        ChangeSetChanged(
            type="changeset.changed",
            session_id=changeset.session_id,
            changeset_id=changeset.pk,
            number=changeset.number,
            state=changeset.state,
            job_id=changeset.job_id,
        ),
    )


def _next_number(session: RefactorSession) -> int:
    last = session.changesets.order_by("-number").values_list("number", flat=True).first()
    return (last or 0) + 1


def _lock_session(session: RefactorSession) -> RefactorSession:
    locked = RefactorSession.objects.select_for_update().get(pk=session.pk)
    busy = locked.changesets.filter(
        state__in=[ChangeSet.State.GENERATING, ChangeSet.State.BUILDING]
    ).exists()
    if busy:
        raise ValidationError("A proposal is still being written: wait for it or stop it.")
    return locked


def _tree_files(store: GitStore, commit: str) -> dict[str, tuple[str, str]]:
    return {item.path: (item.sha, item.mode) for item in store.ls_tree(commit, recursive=True)}


def _reviewable(changeset: ChangeSet) -> None:
    if changeset.state == ChangeSet.State.NO_EDITS:
        raise ValidationError(
            f"{NO_EDITS_MESSAGE} There is nothing to review or apply: regenerate the proposal."
        )
    if changeset.state != ChangeSet.State.READY:
        raise ValidationError("This proposal is not ready for review.")
    if latest_changeset(changeset.session).pk != changeset.pk:
        raise ValidationError("A newer proposal replaced this one; review that one instead.")
