"""Live Daphne server and real Chromium for browser tests.

The server runs in a subprocess on the test database (tests here use ``transactional_db``
so what they create is committed and visible to it). Chromium is Debian's, driven by
Playwright, which downloads no browser of its own.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from tests.live import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "build" / "test-artifacts" / "e2e"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def live_server_env() -> dict[str, str]:
    """Extra environment for the live server; a test module overrides it to configure qweb."""
    return {}


@pytest.fixture
def live_server_url(transactional_db, live_server_env) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
        "DATABASE_URL": subprocess_database_url(),
        "QWEB_DATA_DIR": str(settings.DATA_DIR),
        "QWEB_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # One server process runs the background tasks too, as in the embedded setup.
        "QWEB_EMBEDDED_WORKER": "true",
        **live_server_env,
    }
    log_path = ARTIFACTS / f"daphne-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "qweb.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Daphne did not start; see {log_path}:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


# Package scope: Playwright's sync API keeps an event loop running in this thread while it
# lives, which would break the async tests that run after the browser tests.
@pytest.fixture(scope="package")
def chromium():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Chromium is not installed: run `make chromium` (apt-get install chromium).")
    # Playwright's sync API keeps an event loop running in this thread, which makes Django
    # refuse ORM calls from the test body; the test code is sync, so this is safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under build/test-artifacts/e2e/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
