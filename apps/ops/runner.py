"""The task runner: a loop that claims tasks and runs the handler registered for each kind.

It runs as `manage.py run_tasks` in its own process (team deployments) or as a thread inside
the web process (the embedded setup). Handlers take the task's id and a ``Progress``; they
raise ``TaskError`` with a message for the user when they refuse the work. Temporary files go
in ``attempt_folder(task)``, which is removed when the handler returns; a runner that starts
removes what crashed runners left (``task_leftovers_remove``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from django.db import close_old_connections, connection

from apps.ops import files
from apps.ops.models import Task
from apps.ops.services import (
    TaskError,
    lease,
    task_claim,
    task_complete,
    task_fail,
    task_files_tidy,
    task_lease_renew,
    task_leftovers_remove,
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


def attempt_folder(task: Task) -> Path:
    """The folder for this attempt's temporary files; removed when the handler returns."""
    return files.attempt_dir(task.pk, task.attempts)


class LeaseKeeper:
    """Renews a running task's lease on a thread of its own while the handler works.

    A long step without progress (a big fast-import) then never lets the lease lapse: it runs
    out only when the process is gone, which is what lets others clean up after it.
    """

    def __init__(self, task_id: int, worker: str) -> None:
        self.task_id = task_id
        self.worker = worker
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"qweb-lease-{task_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        interval = lease().total_seconds() / 3
        try:
            while not self._stop.wait(interval):
                # Cancelled or taken over: the handler learns it at its next progress report.
                if not task_lease_renew(task_id=self.task_id, worker=self.worker):
                    return
        except Exception:
            logger.exception("Task %s: renewing the lease failed", self.task_id)
        finally:
            connection.close()


def run_task(task: Task, worker: str) -> None:
    """Run one claimed task to its end state."""
    handler = _handlers.get(task.kind)
    if handler is None:
        task_fail(
            task_id=task.pk, worker=worker, error=f"No handler for tasks of kind {task.kind}."
        )
        return
    try:
        with LeaseKeeper(task.pk, worker):
            result = handler(task, Progress(task.pk, worker))
    except TaskCancelled:
        logger.info("Task %s stopped: cancelled or taken over", task.pk)
        task_files_tidy(task_id=task.pk)
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
    finally:
        # Whatever happened, this attempt is over: its temporary files are no use to anyone.
        files.remove(files.attempt_path(task.pk, task.attempts))


class TaskRunner:
    """Claims and runs tasks until ``stop()``; finishes the current task before returning."""

    # Leftovers are looked for when the runner starts and then this often.
    sweep_interval_s = 600.0

    def __init__(
        self, *, worker: str | None = None, kinds: list[str] | None = None, poll: float = 0.5
    ) -> None:
        self.worker = worker or default_worker_id()
        self.kinds = kinds
        self.poll = poll
        self._stop = threading.Event()
        self.current: int | None = None
        self._swept_at: float | None = None

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

    def remove_leftovers(self) -> None:
        """Remove what tasks that no longer run left on disk (see ``task_leftovers_remove``)."""
        self._swept_at = time.monotonic()
        try:
            task_leftovers_remove()
        except Exception:
            logger.exception("Task runner %s: removing leftovers failed", self.worker)

    def run_forever(self) -> None:
        logger.info("Task runner %s started for %s", self.worker, self.kinds or registered_kinds())
        while not self._stop.is_set():
            # A long-lived loop must drop connections the database closed meanwhile.
            close_old_connections()
            if self._swept_at is None or time.monotonic() - self._swept_at > self.sweep_interval_s:
                self.remove_leftovers()
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
