"""Typed websocket events of a generation job, sent to the group ``job.<id>``.

Deltas carry increasing sequence numbers. A client keeps the last ``seq`` it applied and
ignores anything at or below it. When a worker dies and another retries the job, the new
attempt starts with ``job.rewind``: the client replaces its text with the event's text (the
last checkpoint), sets its ``seq`` to the event's, and from then on ignores events of older
attempts. So nothing is duplicated or missing, whatever the dead worker had sent.
"""

from __future__ import annotations

from typing import Literal, TypedDict


def job_group(job_id: int) -> str:
    return f"job.{job_id}"


class JobDelta(TypedDict):
    type: Literal["job.delta"]
    job_id: int
    attempt: int
    seq: int
    text: str


class JobRewind(TypedDict):
    type: Literal["job.rewind"]
    job_id: int
    attempt: int
    seq: int
    text: str


class JobSnapshot(TypedDict):
    """What a (re)connecting client gets first: the text up to ``seq``."""

    type: Literal["job.snapshot"]
    job_id: int
    attempt: int
    seq: int
    text: str
    state: str


class JobFinished(TypedDict):
    type: Literal["job.finished"]
    job_id: int
    attempt: int
    seq: int
    state: str
    finish_reason: str
    error: str
    prompt_tokens: int
    completion_tokens: int


JobEvent = JobDelta | JobRewind | JobSnapshot | JobFinished
