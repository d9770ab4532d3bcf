"""The live tail of a job: deltas since the last checkpoint, kept in the cache.

The worker appends every delta it sends; a (re)connecting client reads the checkpoint from
the database plus this tail, so it misses nothing sent before it joined the group. The cache
is Redis in a team deployment (shared by all processes) and process memory when embedded.
"""

from __future__ import annotations

from django.core.cache import cache

from apps.generation.events import JobSnapshot
from apps.generation.models import GenerationJob

TAIL_TTL = 3600


def _key(job_id: int) -> str:
    return f"job-tail:{job_id}"


def tail_reset(job_id: int, attempt: int) -> None:
    cache.set(_key(job_id), {"attempt": attempt, "deltas": []}, TAIL_TTL)


def tail_append(job_id: int, attempt: int, seq: int, text: str) -> None:
    """Record a sent delta (only the job's worker writes, so read-modify-write is safe)."""
    tail = cache.get(_key(job_id)) or {"attempt": attempt, "deltas": []}
    if tail["attempt"] != attempt:
        tail = {"attempt": attempt, "deltas": []}
    tail["deltas"].append((seq, text))
    cache.set(_key(job_id), tail, TAIL_TTL)


def tail_trim(job_id: int, attempt: int, checkpoint_seq: int) -> None:
    tail = cache.get(_key(job_id))
    if tail and tail["attempt"] == attempt:
        tail["deltas"] = [(seq, text) for seq, text in tail["deltas"] if seq > checkpoint_seq]
        cache.set(_key(job_id), tail, TAIL_TTL)


def job_snapshot(job: GenerationJob) -> JobSnapshot:
    """The text so far: the stored checkpoint plus the live tail after it, without gaps.

    The tail is read first, the job row after it. The worker appends a delta to the tail
    before sending it and trims the tail only up to a checkpoint it has already written, so
    whatever the tail lacks at the moment it is read is either in the (later-read)
    checkpoint or sent after the follower joined the group. Reading the row first would
    lose the deltas between an old checkpoint and a newer one whose trim emptied the tail.
    """
    tail = cache.get(_key(job.pk))
    job.refresh_from_db(fields=["text", "seq", "attempts", "state"])
    deltas = (
        sorted(tail["deltas"])
        if tail and tail["attempt"] == job.attempts and not job.is_finished
        else []
    )
    text, seq = job.text, job.seq
    for delta_seq, delta_text in deltas:
        if delta_seq == seq + 1:
            text += delta_text
            seq = delta_seq
    return JobSnapshot(
        type="job.snapshot",
        job_id=job.pk,
        attempt=job.attempts,
        seq=seq,
        text=text,
        state=job.state,
    )


def job_snapshot_find(job_id: int) -> JobSnapshot | None:
    """The snapshot of job ``job_id``, or None when there is no such job."""
    job = GenerationJob.objects.filter(pk=job_id).first()
    return None if job is None else job_snapshot(job)
