from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from apps.ops.models import Task
from apps.ops.runner import TaskRunner, register, run_task
from apps.ops.services import TaskError, task_claim, task_enqueue, task_release

calls: list[int] = []


@register("test.ok")
def _ok(task, progress):
    progress(0.5, "halfway", force=True)
    calls.append(task.pk)
    return {"echo": task.payload["value"]}


@register("test.refuse")
def _refuse(task, progress):
    raise TaskError("That archive is not a zip file.")


@register("test.crash")
def _crash(task, progress):
    raise RuntimeError("secret internal detail")


def test_a_claimed_task_runs_and_stores_its_result(db):
    task = task_enqueue(kind="test.ok", payload={"value": 7})
    assert TaskRunner(worker="w1", kinds=["test.ok"]).run_once()
    task.refresh_from_db()
    assert task.state == Task.State.DONE
    assert task.result == {"echo": 7}
    assert task.progress == 1.0
    assert task.attempts == 1


def test_a_refusal_keeps_its_message_for_the_user(db):
    task = task_enqueue(kind="test.refuse", payload={})
    TaskRunner(worker="w1", kinds=["test.refuse"]).run_once()
    task.refresh_from_db()
    assert task.state == Task.State.FAILED
    assert task.error == "That archive is not a zip file."


def test_a_crash_hides_internal_details_from_the_user(db):
    task = task_enqueue(kind="test.crash", payload={})
    TaskRunner(worker="w1", kinds=["test.crash"]).run_once()
    task.refresh_from_db()
    assert task.state == Task.State.FAILED
    assert "secret" not in task.error
    assert "internal error" in task.error


def test_a_task_whose_worker_died_is_retried_by_another_worker(db):
    task = task_enqueue(kind="test.ok", payload={"value": 1})
    [claimed] = task_claim(worker="dead", kinds=["test.ok"])
    assert task_claim(worker="w2", kinds=["test.ok"]) == []  # the lease still holds
    Task.objects.filter(pk=claimed.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    [retried] = task_claim(worker="w2", kinds=["test.ok"])
    assert retried.pk == task.pk
    assert retried.attempts == 2
    assert retried.worker == "w2"


def test_a_task_is_failed_once_its_attempts_are_used_up(db):
    task = task_enqueue(kind="test.ok", payload={"value": 1}, max_attempts=1)
    task_claim(worker="dead", kinds=["test.ok"])
    Task.objects.filter(pk=task.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert task_claim(worker="w2", kinds=["test.ok"]) == []
    task.refresh_from_db()
    assert task.state == Task.State.FAILED
    assert "stopped" in task.error


def test_a_released_task_goes_back_to_the_queue_without_using_an_attempt(db):
    task = task_enqueue(kind="test.ok", payload={"value": 1})
    task_claim(worker="w1", kinds=["test.ok"])
    task_release(task_id=task.pk, worker="w1")
    task.refresh_from_db()
    assert (task.state, task.attempts, task.worker) == (Task.State.QUEUED, 0, "")


def test_a_cancelled_task_stops_at_its_next_progress_report(db):
    task = task_enqueue(kind="test.ok", payload={"value": 1})
    [claimed] = task_claim(worker="w1", kinds=["test.ok"])
    Task.objects.filter(pk=task.pk).update(state=Task.State.CANCELLED)
    calls.clear()
    run_task(claimed, "w1")
    task.refresh_from_db()
    assert task.state == Task.State.CANCELLED
    assert calls == []


def test_an_unknown_kind_fails_with_a_clear_message(db):
    task = task_enqueue(kind="test.nobody", payload={})
    [claimed] = task_claim(worker="w1", kinds=["test.nobody"])
    run_task(claimed, "w1")
    task.refresh_from_db()
    assert task.state == Task.State.FAILED
    assert "test.nobody" in task.error


@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_at_once_never_share_a_task():
    tasks = [task_enqueue(kind="test.ok", payload={"value": n}) for n in range(20)]
    claimed: dict[str, list[int]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)

    def claim_all(name: str) -> None:
        barrier.wait()
        try:
            while got := task_claim(worker=name, kinds=["test.ok"], limit=3):
                claimed[name].extend(task.pk for task in got)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=claim_all, args=(name,)) for name in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed["a"] + claimed["b"]) == sorted(task.pk for task in tasks)
    assert not set(claimed["a"]) & set(claimed["b"])
