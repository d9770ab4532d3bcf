"""Typed websocket events of a refactor session, sent to the group ``refactor.<id>``.

A proposal being written streams as its generation job's events (forwarded with its
``changeset_id``), like a chat answer; these say what changed in the review.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict


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
    # Who decided and when (ISO 8601): every page shows it next to the verdict.
    by: str
    by_id: int | None
    at: str
    # The proposal's ``decisions_version`` after it: pages send the last they saw.
    version: int


class ReviewChanged(TypedDict):
    """A reviewer approved the proposal or asked for changes; ``approval`` is where the
    proposal now stands (``ApprovalState.as_event``: required, approvals, refusal…)."""

    type: Literal["review.changed"]
    session_id: int
    changeset_id: int
    review_id: int
    reviewer: str
    reviewer_id: int
    state: str
    summary: str
    at: str
    approval: dict[str, Any]


class CommentAdded(TypedDict):
    type: Literal["comment.added"]
    session_id: int
    changeset_id: int
    comment_id: int
    path: str
    line: int
    side: str


class ThreadChanged(TypedDict):
    """A thread got a reply, was resolved or reopened (``change``: "reply", "resolved",
    "reopened"). ``changeset_id`` is the proposal the thread was started on: pages of later
    proposals show it too, so they refresh ``path`` whatever proposal they show."""

    type: Literal["thread.changed"]
    session_id: int
    changeset_id: int
    thread_id: int
    comment_id: int
    path: str
    change: Literal["reply", "resolved", "reopened"]
    by: str
    at: str


class SuggestionChanged(TypedDict):
    """A suggestion was made, accepted (``result_changeset_id``: the proposal it became) or
    dismissed."""

    type: Literal["suggestion.changed"]
    session_id: int
    changeset_id: int
    suggestion_id: int
    path: str
    state: str
    by: str
    at: str
    result_changeset_id: int | None


class ApplyFinished(TypedDict):
    type: Literal["apply.finished"]
    session_id: int
    changeset_id: int
    apply_id: int
    state: str
    branch: str
    commit: str
