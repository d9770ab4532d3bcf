"""Writes for background tasks: enqueue, claim with a lease, report progress, finish.

A task's files (``apps.ops.files``) follow its row: an attempt's temporary files go when the
attempt ends or its lease is given up, the task's inputs when the task ends, and what a
crashed process left is found and removed when a runner starts (``task_leftovers_remove``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.ops import files
from apps.ops.events import TaskProgress, task_broadcast
from apps.ops.models import Task
from qweb.leasing import (
    Refund,
    lease_claim,
    lease_exhausted,
    lease_hand_back,
    lease_owned,
    lease_renew,
)

logger = logging.getLogger(__name__)

# A folder or staged file no task row explains is left this long: its task may be queued in
# a transaction that has not committed yet.
ORPHAN_GRACE_S = 3600


def lease() -> timedelta:
    """How long a claim holds without being renewed (``QWEB_TASK_LEASE_S``)."""
    return timedelta(seconds=settings.QWEB_TASK_LEASE_S)


class ProgressReporter(Protocol):
    """What long work reports progress through (a task's ``Progress``, or nothing)."""

    def __call__(self, fraction: float, label: str, *, force: bool = False) -> None: ...


def no_progress(fraction: float, label: str, *, force: bool = False) -> None:
    """A reporter for callers that do not follow progress (commands, tests)."""


class TaskError(Exception):
    """A failure whose message is meant for the user (a refused archive, a bad URL…)."""


def task_enqueue(
    *,
    kind: str,
    payload: dict[str, Any],
    workspace_id: int | None = None,
    created_by_id: int | None = None,
    max_attempts: int = 2,
    inputs: Mapping[str, Path] | None = None,
) -> Task:
    """Queue a task; workers pick it up once the surrounding transaction commits.

    ``inputs`` are files handed to the task (from ``files.staging_path``): each moves into
    the task's folder, its new path goes into the payload under its key, and it is removed
    when the task ends.
    """
    task = Task.objects.create(
        kind=kind,
        payload=payload,
        workspace_id=workspace_id,
        created_by_id=created_by_id,
        max_attempts=max_attempts,
    )
    # A folder already there is another life's (a database restored or reset since).
    files.remove(files.task_dir(task.pk))
    if inputs:
        try:
            for key, path in inputs.items():
                task.payload[key] = str(files.input_adopt(task.pk, Path(path)))
            task.save(update_fields=["payload"])
        except BaseException:
            files.remove(files.task_dir(task.pk))
            raise
    return task


def task_claim(*, worker: str, kinds: Iterable[str], limit: int = 1) -> list[Task]:
    """Take up to ``limit`` runnable tasks for ``worker``: queued ones, or ones whose lease ran out.

    ``skip_locked`` lets several workers claim at once without ever sharing a task; on SQLite
    the IMMEDIATE transaction serialises claims instead.
    """
    now = timezone.now()
    of_kinds = Task.objects.filter(kind__in=list(kinds))
    with transaction.atomic():
        failed = lease_exhausted(
            of_kinds,
            now=now,
            error="The worker running this task stopped. Try again.",
            result=None,
        )
        for task in failed:
            _announce(task)
        claimed = lease_claim(of_kinds, worker=worker, limit=limit, lease=lease(), now=now)
    # Taken over or failed: what the dead attempts left goes (files are never touched under
    # the row locks).
    for task in [*failed, *claimed]:
        task_files_tidy(task_id=task.pk)
    return claimed


def task_report_progress(*, task_id: int, worker: str, progress: float, label: str) -> bool:
    """Record progress and extend the lease; False when the task was cancelled or taken over."""
    updated = lease_renew(
        Task.objects.filter(pk=task_id),
        worker=worker,
        lease=lease(),
        progress=max(0.0, min(1.0, progress)),
        progress_label=label[:200],
    )
    if updated:
        task_broadcast(
            TaskProgress(
                type="task.progress",
                task_id=task_id,
                state=Task.State.RUNNING,
                progress=progress,
                label=label[:200],
                error="",
            )
        )
    return bool(updated)


def task_lease_renew(*, task_id: int, worker: str) -> bool:
    """Extend a running task's lease; False when it was cancelled or taken over."""
    return bool(lease_renew(Task.objects.filter(pk=task_id), worker=worker, lease=lease()))


def _finish(task: Task, state: str, *, error: str = "", result: Any = None) -> None:
    task.state = state
    task.error = error
    task.result = result
    task.finished_at = timezone.now()
    task.lease_until = None
    if state == Task.State.DONE:
        task.progress = 1.0
        task.progress_label = "Done"
    task.save(
        update_fields=[
            "state",
            "error",
            "result",
            "finished_at",
            "lease_until",
            "progress",
            "progress_label",
        ]
    )
    _announce(task)


def _announce(task: Task) -> None:
    task_broadcast(
        TaskProgress(
            type="task.progress",
            task_id=task.pk,
            state=task.state,
            progress=task.progress,
            label=task.progress_label,
            error=task.error,
        )
    )


def task_complete(*, task_id: int, worker: str, result: Any = None) -> None:
    """Mark the task done, unless another worker took it over meanwhile."""
    with transaction.atomic():
        task = _owned_locked(task_id, worker)
        if task is not None:
            _finish(task, Task.State.DONE, result=result)
    task_files_tidy(task_id=task_id)


def task_fail(*, task_id: int, worker: str, error: str) -> None:
    """Mark the task failed with a message for the user."""
    with transaction.atomic():
        task = _owned_locked(task_id, worker)
        if task is not None:
            _finish(task, Task.State.FAILED, error=error)
    task_files_tidy(task_id=task_id)


def _owned_locked(task_id: int, worker: str) -> Task | None:
    return lease_owned(Task.objects.select_for_update().filter(pk=task_id), worker=worker).first()


def task_release(*, task_id: int, worker: str) -> None:
    """Give a running task back to the queue (a worker shutting down mid-task)."""
    # A graceful hand-back is not a failed attempt: the attempt is refunded.
    lease_hand_back(Task.objects.filter(pk=task_id), worker=worker, refund=Refund.ATTEMPT)


def task_files_tidy(*, task_id: int) -> list[Path]:
    """Remove the task's files that nothing can use any more, as its row now says."""
    return _tidy(task_id, Task.objects.filter(pk=task_id).first(), timezone.now())


def task_leftovers_remove() -> list[Path]:
    """Remove what tasks that no longer run left on disk (a crashed or killed process's).

    Every folder is judged by its task's row: an ended task's folder goes whole; a task that
    is queued, or whose lease ran out, keeps only its inputs (for the retry); a running task
    with a live lease, on any worker, keeps its current attempt. Returns what was removed.
    """
    now = timezone.now()  # read first: a lease that lapses meanwhile still counts as live
    on_disk = files.tasks_on_disk()
    rows = Task.objects.only("state", "attempts", "lease_until").in_bulk(list(on_disk))
    removed = []
    for task_id in sorted(on_disk):
        removed += _tidy(task_id, rows.get(task_id), now)
    for path in files.staged_older_than(ORPHAN_GRACE_S):
        files.remove(path)
        removed.append(path)
    if removed:
        logger.info("Removed %d leftovers of tasks that no longer run", len(removed))
    return removed


def _tidy(task_id: int, task: Task | None, now: datetime) -> list[Path]:
    folder = files.task_dir(task_id)
    if task is None:
        # Not committed yet, or rolled back: judged once it has had time to commit.
        if folder.exists() and files.age_s(folder) > ORPHAN_GRACE_S:
            files.remove(folder)
            return [folder]
        return []
    if task.is_finished:
        if folder.exists():
            files.remove(folder)
            return [folder]
        return []
    # Attempts above the one read here were claimed since, by a live worker.
    last_dead = task.attempts - 1 if task.lease_live(now) else task.attempts
    removed = []
    for attempt, path in files.attempts_on_disk(task_id).items():
        if attempt <= last_dead:
            files.remove(path)
            removed.append(path)
    return removed
