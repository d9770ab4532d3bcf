"""The ASGI application Daphne serves: HTTP goes through Django, and the embedded background
work starts from the application itself (lifespan startup, or the first connection), never
from importing ``qweb.asgi``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from channels.testing import HttpCommunicator

from qweb.asgi import application
from tests.live import subprocess_database_url

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[1]
HOST = [(b"host", b"localhost")]
NOTHING = {"qweb-tasks": 0, "qweb-inference": 0}
ONE_EACH = {"qweb-tasks": 1, "qweb-inference": 1}

# Runs in a fresh interpreter, so that the import itself is what is observed. Each step is
# "import", "http" (GET /healthz) or "lifespan.startup"/"lifespan.shutdown" (one lifespan
# scope for the whole run); after each, the live background threads are counted by name.
# It leaves with os._exit: the inference thread may still be loading the model.
PROBE = """
import asyncio, json, os, sys, threading

def counted():
    names = [thread.name for thread in threading.enumerate()]
    return {name: names.count(name) for name in ("qweb-tasks", "qweb-inference")}

async def main(steps):
    from channels.testing import ApplicationCommunicator, HttpCommunicator

    report = []
    lifespan = None
    for step in steps:
        if step == "import":
            from qweb.asgi import application
            outcome = None
        elif step == "http":
            response = await HttpCommunicator(
                application, "GET", "/healthz", headers=[(b"host", b"localhost")]
            ).get_response(timeout=30)
            outcome = response["status"]
        elif step == "lifespan.startup":
            lifespan = ApplicationCommunicator(
                application, {"type": "lifespan", "asgi": {"version": "3.0"}}
            )
            await lifespan.send_input({"type": "lifespan.startup"})
            outcome = (await lifespan.receive_output(timeout=30))["type"]
        elif step == "lifespan.shutdown":
            await lifespan.send_input({"type": "lifespan.shutdown"})
            outcome = (await lifespan.receive_output(timeout=30))["type"]
            await lifespan.wait(timeout=5)
        report.append([step, outcome, counted()])
    return report

print(json.dumps(asyncio.run(main(sys.argv[1:]))), flush=True)
os._exit(0)
"""


@pytest.fixture
def probe(tmp_path, tiny_model_dir):
    """Run PROBE's steps in a fresh qweb process; the embedded setup unless told otherwise."""

    def run(*steps: str, embedded: bool = True) -> list[list]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DATABASE_URL": subprocess_database_url(),
            "QWEB_DATA_DIR": str(tmp_path / "data"),
            "QWEB_EMBEDDED_WORKER": "true" if embedded else "false",
            # A model is there, so the embedded worker starts a thread to serve it.
            "QWEB_INFERENCE_BACKEND": "local",
            "QWEB_MODEL_DIR": str(tiny_model_dir),
        }
        result = subprocess.run(
            [sys.executable, "-c", PROBE, *steps],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout.splitlines()[-1])

    return run


async def test_the_health_check_answers_over_asgi():
    communicator = HttpCommunicator(application, "GET", "/healthz", headers=HOST)

    response = await communicator.get_response(timeout=5)

    assert response["status"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


async def test_pages_over_asgi_send_anonymous_visitors_to_sign_in():
    communicator = HttpCommunicator(application, "GET", "/w/acme/", headers=HOST)

    response = await communicator.get_response(timeout=5)

    assert response["status"] == 302
    assert dict(response["headers"])[b"Location"] == b"/accounts/login/?next=/w/acme/"


def test_importing_the_asgi_module_starts_no_thread(probe):
    [(_, _, threads)] = probe("import")

    assert threads == NOTHING


def test_the_first_connection_starts_the_runner_and_the_worker_once(probe):
    report = probe("import", "http", "http", "http")

    assert report == [
        ["import", None, NOTHING],
        ["http", 200, ONE_EACH],
        ["http", 200, ONE_EACH],
        ["http", 200, ONE_EACH],
    ]


def test_lifespan_startup_starts_them_before_any_connection_and_only_once(probe):
    report = probe("import", "lifespan.startup", "http", "lifespan.shutdown")

    assert report == [
        ["import", None, NOTHING],
        ["lifespan.startup", "lifespan.startup.complete", ONE_EACH],
        ["http", 200, ONE_EACH],
        ["lifespan.shutdown", "lifespan.shutdown.complete", ONE_EACH],
    ]


def test_without_the_embedded_worker_nothing_starts(probe):
    report = probe("import", "lifespan.startup", "http", embedded=False)

    assert report == [
        ["import", None, NOTHING],
        ["lifespan.startup", "lifespan.startup.complete", NOTHING],
        ["http", 200, NOTHING],
    ]
