"""Writes for background tasks: enqueue, claim with a lease, report progress, finish."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any, Protocol

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.ops.events import TaskProgress, task_broadcast
from apps.ops.models import Task

LEASE = timedelta(seconds=60)


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
) -> Task:
    """Queue a task; workers pick it up once the surrounding transaction commits."""
    return Task.objects.create(
        kind=kind,
        payload=payload,
        workspace_id=workspace_id,
        created_by_id=created_by_id,
        max_attempts=max_attempts,
    )


def task_claim(*, worker: str, kinds: Iterable[str], limit: int = 1) -> list[Task]:
    """Take up to ``limit`` runnable tasks for ``worker``: queued ones, or ones whose lease ran out.

    ``skip_locked`` lets several workers claim at once without ever sharing a task; on SQLite
    the IMMEDIATE transaction serialises claims instead.
    """
    now = timezone.now()
    kinds = list(kinds)
    with transaction.atomic():
        _fail_exhausted(kinds, now)
        candidates = list(
            Task.objects.select_for_update(skip_locked=True)
            .filter(kind__in=kinds)
            .filter(Q(state=Task.State.QUEUED) | Q(state=Task.State.RUNNING, lease_until__lt=now))
            .filter(attempts__lt=F("max_attempts"))
            .order_by("created_at")[:limit]
        )
        for task in candidates:
            task.state = Task.State.RUNNING
            task.worker = worker
            task.attempts += 1
            task.lease_until = now + LEASE
            task.started_at = task.started_at or now
            task.save(update_fields=["state", "worker", "attempts", "lease_until", "started_at"])
    return candidates


def _fail_exhausted(kinds: list[str], now: Any) -> None:
    """Tasks whose last attempt's worker died are failed, not retried forever."""
    exhausted = Task.objects.filter(
        kind__in=kinds,
        state=Task.State.RUNNING,
        lease_until__lt=now,
        attempts__gte=F("max_attempts"),
    )
    for task in exhausted.select_for_update(skip_locked=True):
        _finish(task, Task.State.FAILED, error="The worker running this task stopped. Try again.")


def task_report_progress(*, task_id: int, worker: str, progress: float, label: str) -> bool:
    """Record progress and extend the lease; False when the task was cancelled or taken over."""
    updated = Task.objects.filter(pk=task_id, worker=worker, state=Task.State.RUNNING).update(
        progress=max(0.0, min(1.0, progress)),
        progress_label=label[:200],
        lease_until=timezone.now() + LEASE,
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
    task_broadcast(
        TaskProgress(
            type="task.progress",
            task_id=task.pk,
            state=state,
            progress=task.progress,
            label=task.progress_label,
            error=error,
        )
    )


def task_complete(*, task_id: int, worker: str, result: Any = None) -> None:
    """Mark the task done, unless another worker took it over meanwhile."""
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_id, worker=worker).first()
        if task is not None and task.state == Task.State.RUNNING:
            _finish(task, Task.State.DONE, result=result)


def task_fail(*, task_id: int, worker: str, error: str) -> None:
    """Mark the task failed with a message for the user."""
    with transaction.atomic():
        task = Task.objects.select_for_update().filter(pk=task_id, worker=worker).first()
        if task is not None and task.state == Task.State.RUNNING:
            _finish(task, Task.State.FAILED, error=error)


def task_release(*, task_id: int, worker: str) -> None:
    """Give a running task back to the queue (a worker shutting down mid-task)."""
    Task.objects.filter(pk=task_id, worker=worker, state=Task.State.RUNNING).update(
        # A graceful hand-back is not a failed attempt.
        state=Task.State.QUEUED,
        worker="",
        lease_until=None,
        attempts=F("attempts") - 1,
    )
