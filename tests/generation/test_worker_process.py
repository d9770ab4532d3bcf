"""The worker as a process: killed with SIGKILL, stopped with SIGTERM, bad model at start."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.generation.models import GenerationJob
from apps.generation.services import job_submit
from tests.live import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]
ASK = [{"role": "user", "content": "Write a function that adds two numbers."}]


def _start_worker(model_dir: Path, name: str, tmp_path: Path, **extra: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
        "DATABASE_URL": subprocess_database_url(),
        "QWEB_DATA_DIR": str(settings.DATA_DIR),
        "QWEB_MODEL_DIR": str(model_dir),
        "QWEB_DEVICE": "cpu",
        "QWEB_WORKER_LEASE_S": "2",
        "QWEB_CHECKPOINT_MS": "200",
        **extra,
    }
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "manage.py", "inference_worker", "--worker-id", name],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_job_loses_it_to_another_that_completes_it(demo_model_dir, tmp_path):
    job = job_submit(messages=ASK, params={"max_new_tokens": 150})
    first = _start_worker(demo_model_dir, "first", tmp_path)
    try:
        _wait(lambda: GenerationJob.objects.get(pk=job.pk).seq >= 2, 90, "a first checkpoint")
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        first.kill()
    checkpoint = GenerationJob.objects.get(pk=job.pk)
    assert checkpoint.state == GenerationJob.State.RUNNING
    assert checkpoint.worker == "first"

    second = _start_worker(demo_model_dir, "second", tmp_path)
    try:
        _wait(lambda: GenerationJob.objects.get(pk=job.pk).is_finished, 120, "the retry")
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    job.refresh_from_db()
    assert job.state == GenerationJob.State.DONE, job.error
    assert (job.attempts, job.worker) == (2, "second")
    assert job.text.startswith(checkpoint.text)
    assert len(job.text) > len(checkpoint.text)
    # The continuation may end at the model's end-of-turn token; it never exceeds the budget.
    assert checkpoint.completion_tokens < job.completion_tokens <= 150
    if job.finish_reason == "length":
        assert job.completion_tokens == 150


@pytest.mark.django_db(transaction=True)
def test_sigterm_lets_the_running_job_finish_then_exits(demo_model_dir, tmp_path):
    job = job_submit(messages=ASK, params={"max_new_tokens": 60})
    worker = _start_worker(demo_model_dir, "polite", tmp_path)
    try:
        _wait(lambda: GenerationJob.objects.get(pk=job.pk).state == "running", 90, "the claim")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        worker.kill()
    job.refresh_from_db()
    assert job.state == GenerationJob.State.DONE
    assert job.completion_tokens == 60


def test_a_malformed_model_directory_stops_the_worker_at_start_with_a_reason(tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    result = subprocess.run(
        [sys.executable, "manage.py", "inference_worker"],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
            "QWEB_DATA_DIR": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
            "QWEB_MODEL_DIR": str(broken),
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("CommandError: Cannot start the worker:")
    assert "config.json" in last_line
