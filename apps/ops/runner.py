"""The task runner: a loop that claims tasks and runs the handler registered for each kind.

It runs as `manage.py run_tasks` in its own process (team deployments) or as a thread inside
the web process (the embedded setup). Handlers take the task's id and a ``Progress``; they
raise ``TaskError`` with a message for the user when they refuse the work.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import close_old_connections

from apps.ops.models import Task
from apps.ops.services import (
    TaskError,
    task_claim,
    task_complete,
    task_fail,
    task_release,
    task_report_progress,
)

logger = logging.getLogger(__name__)

Handler = Callable[["Task", "Progress"], Any]
_handlers: dict[str, Handler] = {}


def register(kind: str) -> Callable[[Handler], Handler]:
    """Register the function that runs tasks of ``kind``."""

    def decorator(handler: Handler) -> Handler:
        _handlers[kind] = handler
        return handler

    return decorator


def registered_kinds() -> list[str]:
    return sorted(_handlers)


class TaskCancelled(Exception):
    """Raised inside a handler when its task was cancelled or taken over by another worker."""


class Progress:
    """Reports a handler's progress, at most a few times a second, and renews the lease."""

    def __init__(self, task_id: int, worker: str, min_interval: float = 0.25) -> None:
        self.task_id = task_id
        self.worker = worker
        self.min_interval = min_interval
        self._last = 0.0

    def __call__(self, fraction: float, label: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return
        self._last = now
        if not task_report_progress(
            task_id=self.task_id, worker=self.worker, progress=fraction, label=label
        ):
            raise TaskCancelled


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def run_task(task: Task, worker: str) -> None:
    """Run one claimed task to its end state."""
    handler = _handlers.get(task.kind)
    if handler is None:
        task_fail(
            task_id=task.pk, worker=worker, error=f"No handler for tasks of kind {task.kind}."
        )
        return
    try:
        result = handler(task, Progress(task.pk, worker))
    except TaskCancelled:
        logger.info("Task %s stopped: cancelled or taken over", task.pk)
    except TaskError as error:
        task_fail(task_id=task.pk, worker=worker, error=str(error))
    except Exception:
        logger.exception("Task %s (%s) crashed", task.pk, task.kind)
        task_fail(
            task_id=task.pk,
            worker=worker,
            error="An internal error stopped this task; the details are in the server logs.",
        )
    else:
        task_complete(task_id=task.pk, worker=worker, result=result)


class TaskRunner:
    """Claims and runs tasks until ``stop()``; finishes the current task before returning."""

    def __init__(
        self, *, worker: str | None = None, kinds: list[str] | None = None, poll: float = 0.5
    ) -> None:
        self.worker = worker or default_worker_id()
        self.kinds = kinds
        self.poll = poll
        self._stop = threading.Event()
        self.current: int | None = None

    def stop(self) -> None:
        self._stop.set()

    def run_once(self) -> bool:
        """Claim and run one task; False when there was none."""
        tasks = task_claim(worker=self.worker, kinds=self.kinds or registered_kinds(), limit=1)
        if not tasks:
            return False
        self.current = tasks[0].pk
        try:
            run_task(tasks[0], self.worker)
        finally:
            self.current = None
        return True

    def run_forever(self) -> None:
        logger.info("Task runner %s started for %s", self.worker, self.kinds or registered_kinds())
        while not self._stop.is_set():
            # A long-lived loop must drop connections the database closed meanwhile.
            close_old_connections()
            try:
                ran = self.run_once()
            except Exception:
                logger.exception("Task runner %s: claiming failed; retrying", self.worker)
                ran = False
            if not ran:
                self._stop.wait(self.poll)
        logger.info("Task runner %s stopped", self.worker)

    def release_current(self) -> None:
        if self.current is not None:
            task_release(task_id=self.current, worker=self.worker)


def start_embedded_runner() -> TaskRunner:
    """Run tasks on a daemon thread of this process (the embedded, single-process setup)."""
    runner = TaskRunner(worker=f"{default_worker_id()}:embedded")
    thread = threading.Thread(target=runner.run_forever, name="qweb-tasks", daemon=True)
    thread.start()
    return runner
