"""Where a task's files live on disk, named after the task so a crash cannot orphan them.

Everything a task owns sits under ``QWEB_DATA_DIR/tasks/<task id>/``:

- ``input/``: files handed to the task when it was queued (an upload). They stay while the
  task may still run, across retries, and go when it ends.
- ``attempt-<n>/``: what attempt ``n`` writes while it runs (an unpacked archive, a git store
  being built before it is moved into place). It goes when the attempt ends or is given up.

A file written before its task exists (an upload still being copied in) waits in
``tasks/staging/``. When to remove what is decided in ``apps.ops.services`` from the task's
row; this module only knows the places. ``QWEB_DATA_DIR`` is one filesystem, so moving a
finished store from a task's folder into ``repositories/`` is one atomic rename.
"""

from __future__ import annotations

import re
import shutil
import time
import uuid
from pathlib import Path

from django.conf import settings

STAGING = "staging"
INPUT = "input"
_ATTEMPT = re.compile(r"^attempt-([0-9]+)$")


def tasks_root() -> Path:
    return Path(settings.DATA_DIR) / "tasks"


def task_dir(task_id: int) -> Path:
    return tasks_root() / str(int(task_id))


def staging_path(suffix: str = "") -> Path:
    """A fresh path for a file that becomes a task's input once the task is queued."""
    folder = tasks_root() / STAGING
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{uuid.uuid4().hex}{suffix}"


def input_adopt(task_id: int, path: Path) -> Path:
    """Move ``path`` into the task's ``input/`` folder; returns its new path."""
    folder = task_dir(task_id) / INPUT
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    path.rename(target)
    return target


def attempt_path(task_id: int, attempt: int) -> Path:
    """Where attempt ``attempt`` of the task keeps its temporary files."""
    return task_dir(task_id) / f"attempt-{int(attempt)}"


def attempt_dir(task_id: int, attempt: int) -> Path:
    """``attempt_path``, created."""
    folder = attempt_path(task_id, attempt)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def attempts_on_disk(task_id: int) -> dict[int, Path]:
    """The attempt folders the task has on disk, by attempt number."""
    folder = task_dir(task_id)
    if not folder.is_dir():
        return {}
    found = {}
    for child in folder.iterdir():
        match = _ATTEMPT.match(child.name)
        if match:
            found[int(match.group(1))] = child
    return found


def tasks_on_disk() -> dict[int, Path]:
    """Every task folder by task id; names that are not task ids are never listed."""
    root = tasks_root()
    if not root.is_dir():
        return {}
    return {int(child.name): child for child in root.iterdir() if child.name.isdigit()}


def staged_older_than(seconds: float) -> list[Path]:
    """Staged files untouched for ``seconds``: their task was never queued."""
    folder = tasks_root() / STAGING
    if not folder.is_dir():
        return []
    return [child for child in folder.iterdir() if age_s(child) > seconds]


def age_s(path: Path) -> float:
    """Seconds since ``path`` last changed (0 when it is gone)."""
    try:
        return time.time() - path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def remove(path: Path) -> None:
    """Remove a file or folder, whatever is left of it."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
