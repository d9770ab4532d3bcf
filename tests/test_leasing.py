"""The leased queue on the real database, with both kinds of leased rows."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import close_old_connections, transaction
from django.utils import timezone

from apps.generation.models import GenerationJob
from apps.ops.models import Task
from qweb.leasing import (
    LeasedRow,
    Refund,
    lease_claim,
    lease_exhausted,
    lease_finish,
    lease_hand_back,
    lease_renew,
)

LEASE = timedelta(seconds=30)
State = LeasedRow.State


def _task(**fields):
    return Task.objects.create(kind="test.lease", payload={}, **fields)


def _job(**fields):
    return GenerationJob.objects.create(messages=[{"role": "user", "content": "hi"}], **fields)


@pytest.fixture(params=[_task, _job], ids=["task", "job"])
def make(request, db):
    """Creates a leased row of one model, oldest first (distinct ``created_at``)."""
    start = timezone.now() - timedelta(hours=1)
    made = []

    def create(**fields):
        row = request.param(created_at=start + timedelta(seconds=len(made)), **fields)
        made.append(row)
        return row

    return create


def _all(row):
    return type(row).objects.all()


def _lapse(row):
    type(row).objects.filter(pk=row.pk).update(lease_until=timezone.now() - timedelta(seconds=1))


def test_a_claim_takes_the_oldest_runnable_rows_and_holds_them_for_the_lease(make):
    oldest, older, newest = make(), make(), make()
    now = timezone.now()
    claimed = lease_claim(_all(oldest), worker="w1", limit=2, lease=LEASE, now=now)
    assert [row.pk for row in claimed] == [oldest.pk, older.pk]
    for row in (oldest, older):
        row.refresh_from_db()
        assert (row.state, row.worker, row.attempts) == (State.RUNNING, "w1", 1)
        assert (row.lease_until, row.started_at) == (now + LEASE, now)
    newest.refresh_from_db()
    assert (newest.state, newest.worker, newest.attempts) == (State.QUEUED, "", 0)


def test_a_claim_stores_the_extra_fields_it_is_given(db):
    job = _job()
    lease_claim(GenerationJob.objects.all(), worker="w1", limit=1, lease=LEASE, model_name="m")
    job.refresh_from_db()
    assert job.model_name == "m"


def test_a_row_held_by_a_live_lease_is_not_claimed_again(make):
    row = make()
    lease_claim(_all(row), worker="w1", limit=1, lease=LEASE)
    assert lease_claim(_all(row), worker="w2", limit=1, lease=LEASE) == []
    row.refresh_from_db()
    assert (row.worker, row.attempts) == ("w1", 1)


def test_finished_rows_and_rows_without_attempts_left_are_not_claimed(make):
    make(state=State.DONE)
    make(state=State.CANCELLED)
    row = make(attempts=2, max_attempts=2)
    assert lease_claim(_all(row), worker="w1", limit=5, lease=LEASE) == []


def test_a_lapsed_lease_is_claimed_by_another_worker_as_its_next_attempt(make):
    row = make()
    [first] = lease_claim(_all(row), worker="dead", limit=1, lease=LEASE)
    started = first.started_at
    _lapse(row)
    [retried] = lease_claim(_all(row), worker="w2", limit=1, lease=LEASE)
    assert retried.pk == row.pk
    row.refresh_from_db()
    assert (row.state, row.worker, row.attempts) == (State.RUNNING, "w2", 2)
    assert row.started_at == started  # when the work first started, not this attempt
    assert row.lease_until > timezone.now()


@pytest.mark.skipif(
    "postgresql" not in settings.DATABASES["default"]["ENGINE"],
    reason="SQLite serialises claims instead of skipping locked rows",
)
@pytest.mark.django_db(transaction=True)
def test_a_claim_skips_rows_another_transaction_has_locked():
    locked, free = _task(), _task()
    holding, done = threading.Event(), threading.Event()

    def hold_lock():
        try:
            with transaction.atomic():
                list(Task.objects.select_for_update().filter(pk=locked.pk))
                holding.set()
                done.wait(10)
        finally:
            close_old_connections()

    thread = threading.Thread(target=hold_lock)
    thread.start()
    try:
        assert holding.wait(10)
        claimed = lease_claim(Task.objects.all(), worker="w1", limit=2, lease=LEASE)
    finally:
        done.set()
        thread.join()
    assert [row.pk for row in claimed] == [free.pk]
    locked.refresh_from_db()
    assert (locked.state, locked.attempts) == (State.QUEUED, 0)


def test_a_lapsed_row_without_attempts_left_fails_with_the_message(make):
    row = make(max_attempts=1)
    lease_claim(_all(row), worker="dead", limit=1, lease=LEASE)
    _lapse(row)
    now = timezone.now()
    failed = lease_exhausted(_all(row), error="The worker stopped.", now=now)
    assert [each.pk for each in failed] == [row.pk]
    row.refresh_from_db()
    assert (row.state, row.error, row.finished_at, row.lease_until) == (
        State.FAILED,
        "The worker stopped.",
        now,
        None,
    )
    assert lease_claim(_all(row), worker="w2", limit=1, lease=LEASE) == []


def test_exhausted_rows_get_the_extra_fields_they_fail_with(db):
    job = _job(max_attempts=1)
    lease_claim(GenerationJob.objects.all(), worker="dead", limit=1, lease=LEASE)
    _lapse(job)
    lease_exhausted(GenerationJob.objects.all(), error="Stopped.", finish_reason="error")
    job.refresh_from_db()
    assert (job.state, job.finish_reason) == (State.FAILED, "error")


def test_only_lapsed_rows_without_attempts_left_are_failed(make):
    live = make(max_attempts=1)
    lease_claim(_all(live), worker="w1", limit=1, lease=LEASE)
    retryable = make(max_attempts=2)
    lease_claim(_all(retryable), worker="dead", limit=1, lease=LEASE)
    _lapse(retryable)
    assert lease_exhausted(_all(live), error="Stopped.") == []
    live.refresh_from_db()
    retryable.refresh_from_db()
    assert (live.state, retryable.state) == (State.RUNNING, State.RUNNING)
    assert (live.error, retryable.error) == ("", "")


def test_the_worker_holding_the_lease_renews_it_and_writes(db):
    job = _job()
    lease_claim(GenerationJob.objects.all(), worker="w1", limit=1, lease=LEASE)
    later = timezone.now() + timedelta(seconds=10)
    renewed = lease_renew(
        GenerationJob.objects.filter(pk=job.pk), worker="w1", lease=LEASE, now=later, seq=4
    )
    assert renewed == 1
    job.refresh_from_db()
    assert (job.lease_until, job.seq) == (later + LEASE, 4)


def test_a_worker_that_does_not_hold_the_lease_renews_and_writes_nothing(make):
    row = make()
    lease_claim(_all(row), worker="w1", limit=1, lease=LEASE)
    row.refresh_from_db()
    later = timezone.now() + timedelta(minutes=5)
    assert lease_renew(_all(row), worker="w2", lease=LEASE, now=later, error="mine") == 0
    held = type(row).objects.get(pk=row.pk)
    assert (held.lease_until, held.worker, held.error) == (row.lease_until, "w1", "")


def test_a_cancelled_row_is_not_renewed_even_by_its_worker(make):
    row = make()
    lease_claim(_all(row), worker="w1", limit=1, lease=LEASE)
    type(row).objects.filter(pk=row.pk).update(state=State.CANCELLED)
    assert lease_renew(_all(row), worker="w1", lease=LEASE) == 0


def test_the_worker_holding_the_lease_finishes_the_row(make):
    row = make()
    lease_claim(_all(row), worker="w1", limit=1, lease=LEASE)
    assert lease_finish(_all(row), worker="w2", state=State.DONE) == 0
    row.refresh_from_db()
    assert row.state == State.RUNNING
    now = timezone.now()
    assert lease_finish(_all(row), worker="w1", state=State.FAILED, now=now, error="no") == 1
    row.refresh_from_db()
    assert (row.state, row.finished_at, row.lease_until, row.error) == (
        State.FAILED,
        now,
        None,
        "no",
    )
    assert row.is_finished


def test_finishing_in_a_state_that_is_not_an_end_is_refused(db):
    task = _task()
    lease_claim(Task.objects.all(), worker="w1", limit=1, lease=LEASE)
    with pytest.raises(ValueError, match="not a finished state"):
        lease_finish(Task.objects.all(), worker="w1", state=State.QUEUED)
    task.refresh_from_db()
    assert task.state == State.RUNNING


def test_a_hand_back_that_refunds_the_attempt_leaves_the_count_as_before_the_claim(db):
    task = _task()
    lease_claim(Task.objects.all(), worker="w1", limit=1, lease=LEASE)
    assert lease_hand_back(Task.objects.all(), worker="w1", refund=Refund.ATTEMPT) == 1
    task.refresh_from_db()
    assert (task.state, task.worker, task.lease_until) == (State.QUEUED, "", None)
    assert (task.attempts, task.max_attempts) == (0, 2)
    [again] = lease_claim(Task.objects.all(), worker="w2", limit=1, lease=LEASE)
    assert again.attempts == 1


def test_a_hand_back_that_extends_the_budget_keeps_counting_attempts(db):
    job = _job()
    lease_claim(GenerationJob.objects.all(), worker="w1", limit=1, lease=LEASE)
    handed = lease_hand_back(
        GenerationJob.objects.all(), worker="w1", refund=Refund.BUDGET, text="so far", seq=3
    )
    assert handed == 1
    job.refresh_from_db()
    assert (job.state, job.worker, job.lease_until) == (State.QUEUED, "", None)
    assert (job.attempts, job.max_attempts, job.text, job.seq) == (1, 3, "so far", 3)
    # The next attempt has a number of its own, and the retry after it is still there.
    [again] = lease_claim(GenerationJob.objects.all(), worker="w2", limit=1, lease=LEASE)
    assert again.attempts == 2
    _lapse(job)
    [retry] = lease_claim(GenerationJob.objects.all(), worker="w3", limit=1, lease=LEASE)
    assert retry.attempts == 3


def test_a_worker_that_does_not_hold_the_lease_cannot_hand_it_back(make):
    row = make()
    lease_claim(_all(row), worker="w1", limit=1, lease=LEASE)
    for refund in Refund:
        assert lease_hand_back(_all(row), worker="w2", refund=refund) == 0
    row.refresh_from_db()
    assert (row.state, row.worker, row.attempts, row.max_attempts) == (State.RUNNING, "w1", 1, 2)


def test_a_lease_is_live_only_while_running_and_not_lapsed(make):
    row = make()
    now = timezone.now()
    assert not row.lease_live(now)
    [claimed] = lease_claim(_all(row), worker="w1", limit=1, lease=LEASE, now=now)
    assert claimed.lease_live(now + LEASE)
    assert not claimed.lease_live(now + LEASE + timedelta(microseconds=1))
