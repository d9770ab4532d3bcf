"""Applying holds no transaction (so no row lock) while git works, and two applies race safely.

Committed data (``transaction=True``): the applies run on threads of their own, each with its
own database connection, as two web workers would.
"""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction

from apps.refactors import services
from apps.refactors.models import Apply, ChangeSet
from qweb.lib.gitstore import GitStore
from tests.refactors.test_flow import RENAME

pytestmark = pytest.mark.django_db(transaction=True)


def test_no_git_command_of_an_apply_runs_inside_a_transaction(
    project, propose, owner, membership_of, monkeypatch
):
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    seen: list[tuple[str, bool]] = []
    run_git = GitStore._git

    def watched(self, *args, **kwargs):
        seen.append((args[0], connection.in_atomic_block))
        return run_git(self, *args, **kwargs)

    monkeypatch.setattr(GitStore, "_git", watched)
    run_git_with = GitStore._git_with

    def watched_with(self, env, *args, **kwargs):
        seen.append((args[0], connection.in_atomic_block))
        return run_git_with(self, env, *args, **kwargs)

    monkeypatch.setattr(GitStore, "_git_with", watched_with)

    record = services.changeset_apply(membership=membership_of(owner), changeset=changeset)

    assert record.state == Apply.State.APPLIED
    commands = {command for command, _ in seen}
    assert {"update-ref", "commit-tree", "apply"} <= commands
    assert [command for command, inside in seen if inside] == []


def test_a_row_lock_on_the_proposal_does_not_hold_up_the_git_work(
    project, propose, owner, membership_of
):
    """While another transaction locks the proposal's row, the apply gets as far as git goes.

    It moves the branch, then waits for the lock only to write its record.
    """
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    store = GitStore(project.store_path)
    branch = f"refs/heads/qweb/refactor-{changeset.session_id}"
    outcome: dict[str, object] = {}

    def apply() -> None:
        try:
            outcome["record"] = services.changeset_apply(
                membership=membership_of(owner), changeset=changeset
            )
        except Exception as error:  # reported below
            outcome["error"] = error
        finally:
            connection.close()

    with transaction.atomic():
        ChangeSet.objects.select_for_update().get(pk=changeset.pk)
        worker = threading.Thread(target=apply)
        worker.start()
        for _ in range(600):
            if store.resolve_optional(branch) is not None:
                break
            worker.join(0.1)
        moved = store.resolve_optional(branch)
        assert worker.is_alive(), outcome  # still waiting for the lock, to record
    worker.join(60)

    assert "error" not in outcome, outcome
    record = outcome["record"]
    assert moved is not None and record.result_commit == moved
    assert Apply.objects.get().state == Apply.State.APPLIED


def test_two_applies_at_once_move_the_branch_once_and_record_one_apply(
    project, propose, owner, membership_of
):
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    start = threading.Barrier(2)
    results: list[object] = []

    def apply() -> None:
        start.wait()
        try:
            results.append(
                services.changeset_apply(membership=membership_of(owner), changeset=changeset)
            )
        except ValidationError as error:
            results.append(error)
        finally:
            connection.close()

    workers = [threading.Thread(target=apply) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)

    applied = Apply.objects.filter(state=Apply.State.APPLIED)
    assert applied.count() == 1
    record = applied.get()
    store = GitStore(project.store_path)
    assert store.resolve(f"qweb/refactor-{changeset.session_id}") == record.result_commit
    assert store.log(record.result_commit, limit=2)[1].sha == project.head_sha  # applied once
    for result in results:
        # The loser gets the winner's apply, or (when it lost the branch before the winner
        # recorded) a request to apply again, which then returns the winner's apply.
        if isinstance(result, ValidationError):
            assert "moved while applying" in " ".join(result.messages)
        else:
            assert result.pk == record.pk
    again = services.changeset_apply(membership=membership_of(owner), changeset=changeset)
    assert again.pk == record.pk
