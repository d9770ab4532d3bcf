"""`make run` on a fresh clone, the way a newcomer runs it.

The real Makefile target in a subprocess, with the real settings (hashed static files, not
the plain storage tests.settings uses), an empty data directory and none of the variables a
deployment or this test run sets: SQLite, the in-memory channel layer, the demo model.
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A fresh clone builds the demo model and collects the static files before it serves:
# about half a minute on two cores, so leave plenty of room on a busy machine.
START_TIMEOUT_S = 300
# Variables a newcomer does not have but this run may: CI's services, pytest-django's
# DJANGO_SETTINGS_MODULE, tests.settings' QWEB_DATA_DIR and QWEB_CHANNEL_PREFIX, and the
# MAKEFLAGS/MAKELEVEL of an outer `make test`.
NEWCOMER_UNSET = ("DATABASE_URL", "REDIS_URL", "MFLAGS")
NEWCOMER_UNSET_PREFIXES = ("QWEB_", "DJANGO_", "MAKE")
ADMIN_BANNER = re.compile(r"Sign in as (?P<email>\S+) with password: (?P<password>\S+)")
STATIC_REFERENCE = re.compile(r'(?:href|src)="(/static/[^"]+)"')
# ManifestStaticFilesStorage's names: the first 12 hex digits of the MD5 before the suffix.
HASHED_NAME = re.compile(r"\.[0-9a-f]{12}\.[a-z]+$")


@dataclass(frozen=True)
class Server:
    url: str
    stdout: Path
    stderr: Path

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _newcomer_env(data_dir: Path) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in NEWCOMER_UNSET and not name.startswith(NEWCOMER_UNSET_PREFIXES)
    }
    env["QWEB_DATA_DIR"] = str(data_dir)
    return env


def _group_alive(process: subprocess.Popen[bytes]) -> bool:
    process.poll()  # reap make itself, or its zombie would count
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop make and everything it started (Daphne, the embedded workers), as one group."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while _group_alive(process) and time.monotonic() < deadline:
        time.sleep(0.1)
    # Whatever still lingers in the group (make may be gone before Daphne) is killed.
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=15)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    make = shutil.which("make")
    if make is None:
        pytest.fail("`make` is not installed; the README's quick start needs it.")
    env = _newcomer_env(tmp_path_factory.mktemp("fresh-data"))
    # An installed virtual environment is reused: `make run` must not reinstall it.
    stale = subprocess.run([make, "--question", ".venv/.installed"], cwd=ROOT, env=env, check=False)
    if stale.returncode != 0:
        pytest.fail("`make run` would reinstall .venv (pyproject.toml is newer): `make install`.")
    port = _free_port()
    logs = tmp_path_factory.mktemp("make-run")
    server = Server(f"http://127.0.0.1:{port}", logs / "stdout.log", logs / "stderr.log")
    with server.stdout.open("wb") as stdout, server.stderr.open("wb") as stderr:
        process = subprocess.Popen(
            [make, "run", f"PORT={port}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group, stopped as one
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(server.url):
            exited = process.poll()
            if exited is not None or time.monotonic() > deadline:
                why = f"exited with {exited}" if exited is not None else f"{START_TIMEOUT_S} s"
                pytest.fail(
                    f"`make run` did not serve {server.url} ({why}).\n"
                    f"--- stdout\n{server.output()[-4000:]}\n"
                    f"--- stderr\n{server.stderr.read_text(errors='replace')[-4000:]}"
                )
            time.sleep(0.25)
        yield server
    finally:
        _stop(process)


def _get(url: str, opener: urllib.request.OpenerDirector | None = None) -> tuple[int, str]:
    opener = opener or urllib.request.build_opener()
    with opener.open(url, timeout=10) as response:
        return response.status, response.read().decode()


def test_healthz_answers_ok(make_run):
    status, body = _get(f"{make_run.url}/healthz")

    assert status == 200
    assert json.loads(body) == {"status": "ok"}


def test_the_sign_in_page_loads_its_hashed_static_files(make_run):
    status, page = _get(f"{make_run.url}/accounts/login/")

    assert status == 200
    assets = STATIC_REFERENCE.findall(page)
    assert any("/vendor/pico/pico.min." in asset for asset in assets), assets
    assert any("/vendor/htmx/htmx.min." in asset for asset in assets), assets
    for asset in assets:
        assert HASHED_NAME.search(asset), f"{asset} is not a manifest name"
        asset_status, body = _get(f"{make_run.url}{asset}")
        assert asset_status == 200, asset
        assert body


def test_it_prints_the_first_admins_email_and_generated_password(make_run):
    match = ADMIN_BANNER.search(make_run.output())

    assert match is not None, make_run.output()
    assert match["email"] == "admin@localhost"
    assert len(match["password"]) >= 16


def test_the_printed_credentials_sign_in(make_run):
    credentials = ADMIN_BANNER.search(make_run.output())
    assert credentials is not None
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    _, page = _get(f"{make_run.url}/accounts/login/", opener)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert token is not None

    form = {
        "csrfmiddlewaretoken": token[1],
        "username": credentials["email"],
        "password": credentials["password"],
    }
    request = urllib.request.Request(  # noqa: S310 - the URL is this test's own server
        f"{make_run.url}/accounts/login/", data=urllib.parse.urlencode(form).encode()
    )
    with opener.open(request, timeout=10) as response:
        landed = urllib.parse.urlsplit(response.url).path

    assert landed != "/accounts/login/"
    status, profile = _get(f"{make_run.url}/accounts/profile/", opener)
    assert status == 200
    assert credentials["email"] in profile
