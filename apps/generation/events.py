"""Typed websocket events of a generation job, sent to the group ``job.<id>``.

Deltas carry increasing sequence numbers. A client keeps the last ``seq`` it applied and
ignores anything at or below it. When a worker dies and another retries the job, the new
attempt starts with ``job.rewind``: the client replaces its text with the event's text (the
last checkpoint), sets its ``seq`` to the event's, and from then on ignores events of older
attempts. So nothing is duplicated or missing, whatever the dead worker had sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypedDict


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


@dataclass
class StreamPosition:
    """Where a follower of a job's stream is: the attempt and the last ``seq`` it applied."""

    attempt: int = 0
    seq: int = 0

    def advance(self, event: dict[str, Any]) -> bool:
        """Whether the follower should apply ``event``; if so, move past it.

        Events of older attempts are stale; a newer attempt starts with its ``job.rewind``
        (anything else of it before that is ignored); within an attempt only higher ``seq``
        counts. ``job.finished`` of the current or a newer attempt always applies.
        """
        if event["attempt"] < self.attempt:
            return False
        if event["type"] == "job.finished":
            return True
        if event["attempt"] > self.attempt and event["type"] != "job.rewind":
            return False
        if event["attempt"] == self.attempt and event["seq"] <= self.seq:
            return False
        self.attempt, self.seq = event["attempt"], event["seq"]
        return True
