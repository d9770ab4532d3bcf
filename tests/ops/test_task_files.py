"""A task's files follow its row: inputs for its life, an attempt's files for the attempt."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from apps.ops import files
from apps.ops.models import Task
from apps.ops.runner import TaskRunner, attempt_folder, register
from apps.ops.services import (
    ORPHAN_GRACE_S,
    TaskError,
    task_claim,
    task_enqueue,
    task_leftovers_remove,
)

seen: dict[str, bool] = {}


@register("test.files")
def _writes_files(task, progress):
    scratch = attempt_folder(task)
    (scratch / "unpacked").mkdir()
    (scratch / "unpacked" / "big.bin").write_bytes(b"x" * 1000)
    seen["input"] = os.path.exists(task.payload["upload_path"])
    if task.payload.get("refuse"):
        raise TaskError("Refused.")
    return {}


@register("test.slow")
def _slow_without_progress(task, progress):
    time.sleep(task.payload["seconds"])
    # The lease outlived the step: no other worker could take the task meanwhile.
    seen["kept"] = task_claim(worker="other", kinds=["test.slow"]) == []
    return {}


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


def _staged(content: bytes = b"archive") -> Path:
    path = files.staging_path(".upload")
    path.write_bytes(content)
    return path


def _queue(kind: str = "test.files", max_attempts: int = 2, **payload) -> Task:
    return task_enqueue(
        kind=kind, payload=payload, inputs={"upload_path": _staged()}, max_attempts=max_attempts
    )


def _expire(task: Task) -> None:
    Task.objects.filter(pk=task.pk).update(lease_until=timezone.now() - timedelta(seconds=1))


def _files_of(task_id: int) -> list[str]:
    folder = files.task_dir(task_id)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _input_of(task: Task) -> str:
    return f"input/{Path(task.payload['upload_path']).name}"


def test_an_input_moves_into_the_tasks_folder_and_the_payload_points_there(db, data_dir):
    task = _queue()
    assert task.payload["upload_path"].startswith(str(data_dir / "tasks" / str(task.pk)))
    task.refresh_from_db()
    assert _files_of(task.pk) == [_input_of(task)]
    assert list((data_dir / "tasks" / "staging").iterdir()) == []


@pytest.mark.parametrize("refuse", [False, True], ids=["done", "failed"])
def test_an_ended_task_leaves_nothing_behind(db, refuse):
    task = _queue(refuse=refuse)
    TaskRunner(worker="w", kinds=["test.files"]).run_once()
    task.refresh_from_db()
    assert task.state == (Task.State.FAILED if refuse else Task.State.DONE)
    assert seen["input"]
    assert not files.task_dir(task.pk).exists()


def test_a_taken_over_task_loses_the_dead_attempts_files_but_keeps_its_input(db):
    task = _queue()
    [claimed] = task_claim(worker="dead", kinds=["test.files"])
    (attempt_folder(claimed) / ".incoming-x.git").mkdir()
    _expire(task)
    [retried] = task_claim(worker="w2", kinds=["test.files"])
    assert retried.attempts == 2
    assert _files_of(task.pk) == [_input_of(task)]
    assert not files.attempt_path(task.pk, 1).exists()


def test_a_task_failed_once_its_lease_ran_out_leaves_nothing(db):
    task = _queue(max_attempts=1)
    [claimed] = task_claim(worker="dead", kinds=["test.files"])
    (attempt_folder(claimed) / "unpacked").mkdir()
    _expire(task)
    assert task_claim(worker="w2", kinds=["test.files"]) == []
    task.refresh_from_db()
    assert task.state == Task.State.FAILED
    assert "stopped" in task.error
    assert not files.task_dir(task.pk).exists()


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_sweep_removes_what_no_running_task_can_use(db, data_dir):
    finished = _queue()
    Task.objects.filter(pk=finished.pk).update(state=Task.State.DONE)
    dead = _queue()
    [claimed] = task_claim(worker="dead", kinds=["test.files"])
    (attempt_folder(claimed) / "unpacked").mkdir()
    _expire(dead)
    orphan = files.attempt_dir(10**9, 1)  # a task that never committed, long ago
    _age(orphan.parent, ORPHAN_GRACE_S + 60)
    old_staged = _staged()
    _age(old_staged, ORPHAN_GRACE_S + 60)

    task_leftovers_remove()

    assert not files.task_dir(finished.pk).exists()
    assert _files_of(dead.pk) == [_input_of(dead)]  # kept for the retry
    assert not orphan.parent.exists()
    assert not old_staged.exists()


def test_the_sweep_never_touches_a_task_running_under_a_live_lease(db, data_dir):
    running = _queue()
    # Another worker, on another machine, is on its second attempt.
    [claimed] = task_claim(worker="dead", kinds=["test.files"])
    _expire(running)
    [claimed] = task_claim(worker="elsewhere:1:1", kinds=["test.files"])
    (attempt_folder(claimed) / ".incoming-y.git").mkdir()
    (attempt_folder(claimed) / ".incoming-y.git" / "HEAD").write_text("ref: refs/heads/main\n")
    files.attempt_dir(running.pk, 1)  # the first attempt's, left by the dead worker
    fresh_orphan = files.attempt_dir(10**9 + 1, 1)  # its task may not have committed yet
    fresh_staged = _staged()
    before = _files_of(running.pk)

    task_leftovers_remove()

    assert _files_of(running.pk) == before
    assert files.attempt_path(running.pk, 2).exists()
    assert not files.attempt_path(running.pk, 1).exists()
    assert fresh_orphan.exists()
    assert fresh_staged.exists()


def test_the_sweep_leaves_alone_what_it_cannot_attribute_to_a_task(db, data_dir):
    stranger = data_dir / "tasks" / "notes"
    stranger.mkdir(parents=True)
    _age(stranger, ORPHAN_GRACE_S + 60)
    task_leftovers_remove()
    assert stranger.exists()


@pytest.mark.django_db(transaction=True)
def test_a_long_step_without_progress_keeps_the_lease(settings):
    settings.QWEB_TASK_LEASE_S = 1
    task = task_enqueue(kind="test.slow", payload={"seconds": 2.5})
    assert TaskRunner(worker="w", kinds=["test.slow"]).run_once()
    task.refresh_from_db()
    assert task.state == Task.State.DONE
    assert (task.attempts, task.worker) == (1, "w")
    assert seen["kept"]
