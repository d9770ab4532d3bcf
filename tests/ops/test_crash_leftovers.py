"""A task runner killed with SIGKILL mid-import: the next runner leaves no trace of it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from apps.ops import files
from apps.ops.models import Task
from apps.ops.services import task_enqueue
from apps.repos import services
from apps.repos.models import Repository
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from tests import factories
from tests.live import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]
LEASE_S = 2


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    return settings.DATA_DIR


def _start_runner(name: str, tmp_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": subprocess_database_url(),
        "QWEB_DATA_DIR": str(settings.DATA_DIR),
        "QWEB_TASK_LEASE_S": str(LEASE_S),
        "QWEB_EMBEDDED_WORKER": "false",
    }
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_tasks", "--kinds", "repo.import"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait(predicate, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def _big_archive(path: Path) -> None:
    """About 80 MB that neither compresses nor imports in an instant."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for n in range(80):
            archive.writestr(f"proj/data/blob_{n:03}.bin", os.urandom(1024 * 1024))


def _traces(root: Path) -> list[str]:
    """Everything under ``root`` that an import leaves while it runs."""
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.name.startswith((".incoming-", "qweb-archive-")) or path.suffix == ".upload"
    )


def _another_workers_import() -> tuple[Task, list[Path]]:
    """An import running on another machine right now: its lease is live, its files real."""
    upload = files.staging_path(".upload")
    upload.write_bytes(b"PK\x05\x06" + bytes(18))
    task = task_enqueue(
        kind="repo.import", payload={}, inputs={"upload_path": upload}, max_attempts=1
    )
    Task.objects.filter(pk=task.pk).update(
        state=Task.State.RUNNING,
        worker="elsewhere:1:1",
        attempts=1,
        lease_until=timezone.now() + timedelta(hours=1),
    )
    store = files.attempt_dir(task.pk, 1) / ".incoming-elsewhere.git"
    (store / "objects").mkdir(parents=True)
    (store / "HEAD").write_text("ref: refs/heads/main\n")
    unpacked = files.attempt_dir(task.pk, 1) / "qweb-archive-elsewhere"
    unpacked.mkdir()
    (unpacked / "app.py").write_text("print('hi')\n")
    return task, [Path(task.payload["upload_path"]), store / "HEAD", unpacked / "app.py"]


@pytest.mark.django_db(transaction=True)
def test_an_import_killed_mid_way_leaves_no_trace_once_a_runner_takes_over(data_dir, tmp_path):
    workspace = factories.workspace_create(slug="acme")
    member = factories.membership_create(workspace=workspace, role=Role.MEMBER)
    other, other_files = _another_workers_import()
    archive = tmp_path / "big.zip"
    _big_archive(archive)
    with archive.open("rb") as handle:
        task = services.repository_import_enqueue(
            actor=Membership.objects.get(pk=member.pk),
            name="Big",
            archive=handle,
            filename="big.zip",
            size=archive.stat().st_size,
        )
    attempt = files.attempt_path(task.pk, 1)

    first = _start_runner("first", tmp_path)
    try:
        _wait(
            lambda: any(p.name.startswith(".incoming-") for p in attempt.glob("*")),
            60,
            "the import to start writing its store",
            interval=0.01,
        )
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    killed = Task.objects.get(pk=task.pk)
    assert (killed.state, killed.attempts) == (Task.State.RUNNING, 1), killed.error
    # What the crash leaves: the upload, the unpacked archive, the half-built store.
    upload = Path(Task.objects.get(pk=task.pk).payload["upload_path"])
    assert upload.stat().st_size == archive.stat().st_size
    store, unpacked = sorted(p.name for p in attempt.iterdir())
    assert store.startswith(".incoming-") and unpacked.startswith("qweb-archive-")

    # Started while the dead runner's lease may still hold; it waits for it to run out.
    second = _start_runner("second", tmp_path)
    try:
        _wait(
            lambda: Task.objects.get(pk=task.pk).state == Task.State.FAILED,
            30,
            "the dead runner's task to be failed",
        )
        _wait(lambda: not files.task_dir(task.pk).exists(), 10, "its files to go")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    task.refresh_from_db()
    assert task.error == "The worker running this task stopped. Try again."
    assert not Repository.objects.exists()
    repositories = data_dir / "repositories"
    assert not repositories.exists() or list(repositories.iterdir()) == []
    assert list((data_dir / "tasks" / "staging").iterdir()) == []
    assert [t for t in _traces(data_dir) if not t.startswith(f"tasks/{other.pk}/")] == []
    # The other worker's import, under its live lease, is untouched.
    assert all(path.exists() for path in other_files)
    assert Task.objects.get(pk=other.pk).state == Task.State.RUNNING
