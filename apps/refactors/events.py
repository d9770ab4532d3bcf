"""Typed websocket events of a refactor session, sent to the group ``refactor.<id>``.

A proposal being written streams as its generation job's events (forwarded with its
``changeset_id``), like a chat answer; these say what changed in the review.
"""

from __future__ import annotations

from typing import Literal, TypedDict


def session_group(session_id: int) -> str:
    return f"refactor.{session_id}"


class ChangeSetChanged(TypedDict):
    """A proposal started, finished writing, was applied to the tree, or failed."""

    type: Literal["changeset.changed"]
    session_id: int
    changeset_id: int
    number: int
    state: str
    job_id: int | None


class DecisionChanged(TypedDict):
    """A reviewer accepted, rejected or cleared a hunk (``hunk`` -1: a whole file; ``path``
    empty: every file)."""

    type: Literal["decision.changed"]
    session_id: int
    changeset_id: int
    path: str
    hunk: int
    verdict: str
    by: str


class CommentAdded(TypedDict):
    type: Literal["comment.added"]
    session_id: int
    changeset_id: int
    comment_id: int
    path: str
    line: int
    side: str


class ApplyFinished(TypedDict):
    type: Literal["apply.finished"]
    session_id: int
    changeset_id: int
    apply_id: int
    state: str
    branch: str
    commit: str
