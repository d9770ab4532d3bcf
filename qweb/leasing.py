"""One leased queue: rows that workers claim for a while, renew, finish or hand back.

A worker claims a row by taking a lease on it (``lease_until``) and renews the lease while
it works; a worker that dies stops renewing, and once the lease has lapsed another worker
claims the row again as its next attempt, until ``max_attempts`` are used up and the row
fails. ``apps.ops.Task`` and ``apps.generation.GenerationJob`` are both such rows.

Claims lock the candidate rows with ``select_for_update(skip_locked=True)``, so several
workers claim at once without ever sharing a row; on SQLite the IMMEDIATE transaction
serialises claims instead. Every later write goes through ``lease_owned``: it touches the
row only while this worker still holds it, so a worker whose lease was taken over (or whose
row was cancelled) writes nothing.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone


class LeasedRow(models.Model):
    """The state, attempts and lease that every row claimed by workers has."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=2)
    worker = models.CharField(max_length=128, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.state in FINISHED

    def lease_live(self, now: datetime) -> bool:
        """Whether a worker holds this row at ``now`` (running, lease not lapsed)."""
        return (
            self.state == LeasedRow.State.RUNNING
            and self.lease_until is not None
            and self.lease_until >= now
        )


FINISHED = frozenset({LeasedRow.State.DONE, LeasedRow.State.FAILED, LeasedRow.State.CANCELLED})

Row = TypeVar("Row", bound=LeasedRow)


class Refund(enum.Enum):
    """What a hand-back gives back, so that handing a row back never costs it a retry."""

    # The attempt is undone (``attempts - 1``): the next claim runs under the same number.
    # For work whose attempt number means nothing outside the worker (tasks).
    ATTEMPT = "attempt"
    # One attempt is added to the budget (``max_attempts + 1``) and the count keeps growing:
    # for work whose attempt number is seen outside, e.g. a job's stream epoch, which must
    # never be reused for different text.
    BUDGET = "budget"


def lease_claim(
    queryset: models.QuerySet[Row],
    *,
    worker: str,
    limit: int,
    lease: timedelta,
    now: datetime | None = None,
    **fields: Any,
) -> list[Row]:
    """Claim up to ``limit`` runnable rows of ``queryset`` for ``worker``, oldest first.

    Runnable: queued, or running with a lapsed lease, and with attempts left. Each claimed
    row is running, held by ``worker`` until ``now + lease``, one attempt further, and has
    ``fields`` set as well (what else a claim records, e.g. the model that serves it).
    """
    now = now or timezone.now()
    # No savepoint of its own: inside a caller's transaction, a failure rolls back all of it.
    with transaction.atomic(savepoint=False):
        rows = list(
            queryset.select_for_update(skip_locked=True)
            .filter(
                Q(state=LeasedRow.State.QUEUED)
                | Q(state=LeasedRow.State.RUNNING, lease_until__lt=now)
            )
            .filter(attempts__lt=F("max_attempts"))
            .order_by("created_at", "pk")[:limit]
        )
        for row in rows:
            row.state = LeasedRow.State.RUNNING
            row.worker = worker
            row.attempts += 1
            row.lease_until = now + lease
            row.started_at = row.started_at or now
            for name, value in fields.items():
                setattr(row, name, value)
            row.save(
                update_fields=["state", "worker", "attempts", "lease_until", "started_at", *fields]
            )
    return rows


def lease_exhausted(
    queryset: models.QuerySet[Row], *, error: str, now: datetime | None = None, **fields: Any
) -> list[Row]:
    """Fail the rows of ``queryset`` whose last attempt's worker died; returns them.

    A row whose lease lapsed with no attempts left is failed with ``error`` (a message for
    the user) and ``fields``, rather than retried forever. Inside a caller's transaction (the
    claim's) the returned rows stay locked until that commits.
    """
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):
        rows = list(
            queryset.select_for_update(skip_locked=True).filter(
                state=LeasedRow.State.RUNNING,
                lease_until__lt=now,
                attempts__gte=F("max_attempts"),
            )
        )
        for row in rows:
            row.state = LeasedRow.State.FAILED
            row.error = error
            row.finished_at = now
            row.lease_until = None
            for name, value in fields.items():
                setattr(row, name, value)
            row.save(update_fields=["state", "error", "finished_at", "lease_until", *fields])
    return rows


def lease_owned(queryset: models.QuerySet[Row], *, worker: str) -> models.QuerySet[Row]:
    """The rows of ``queryset`` that ``worker`` still holds: running and claimed by it."""
    return queryset.filter(worker=worker, state=LeasedRow.State.RUNNING)


def lease_renew(
    queryset: models.QuerySet[Row],
    *,
    worker: str,
    lease: timedelta,
    now: datetime | None = None,
    **fields: Any,
) -> int:
    """Extend ``worker``'s lease to ``now + lease``, writing ``fields`` too; rows renewed.

    0 means the row is no longer this worker's (finished, cancelled or taken over).
    """
    now = now or timezone.now()
    return lease_owned(queryset, worker=worker).update(lease_until=now + lease, **fields)


def lease_finish(
    queryset: models.QuerySet[Row],
    *,
    worker: str,
    state: LeasedRow.State,
    now: datetime | None = None,
    **fields: Any,
) -> int:
    """End ``worker``'s rows in ``state`` (one of ``FINISHED``), writing ``fields`` too."""
    if state not in FINISHED:
        raise ValueError(f"{state!r} is not a finished state")
    return lease_owned(queryset, worker=worker).update(
        state=state, finished_at=now or timezone.now(), lease_until=None, **fields
    )


def lease_hand_back(
    queryset: models.QuerySet[Row], *, worker: str, refund: Refund, **fields: Any
) -> int:
    """Give ``worker``'s rows back to the queue (a graceful stop), writing ``fields`` too.

    A hand-back is not a failed attempt: ``refund`` says how the row keeps its retries.
    """
    if refund is Refund.ATTEMPT:
        budget = {"attempts": F("attempts") - 1}
    else:
        budget = {"max_attempts": F("max_attempts") + 1}
    return lease_owned(queryset, worker=worker).update(
        state=LeasedRow.State.QUEUED, worker="", lease_until=None, **budget, **fields
    )
