"""Live Daphne server and real Chromium for browser tests.

The server runs in a subprocess on the test database (tests here use ``transactional_db``
so what they create is committed and visible to it). Chromium is Debian's, driven by
Playwright, which downloads no browser of its own.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.live import live_daphne

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
    env = {
        "QWEB_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # One server process runs the background tasks too, as in the embedded setup.
        "QWEB_EMBEDDED_WORKER": "true",
        **live_server_env,
    }
    with live_daphne(env, ARTIFACTS / f"daphne-{time.monotonic_ns()}.log") as url:
        yield url


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


# Reports each Content-Security-Policy violation of a page to the test, through a binding
# (which the policy does not govern). Registered before any script of the page runs.
_REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__qwebCspViolation({
    directive: event.effectiveDirective,
    blocked: event.blockedURI,
    source: event.sourceFile ? event.sourceFile + ":" + event.lineNumber : "",
    sample: event.sample,
  });
}, true);
"""


def watch_csp(context, violations: list[str]) -> None:
    """Record into ``violations`` every CSP violation any page of ``context`` reports."""

    def on_event(source, report) -> None:
        url = source["frame"].url
        violations.append(
            f"{report['directive']} blocked {report['blocked'] or 'inline'} on {url}"
            + (f" (from {report['source']})" if report["source"] else "")
            + (f": {report['sample']!r}" if report["sample"] else "")
        )

    def on_console(message) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            url = message.location.get("url") or (message.page.url if message.page else "?")
            violations.append(f"console on {url}: {message.text}")

    context.expose_binding("__qwebCspViolation", on_event)
    context.add_init_script(_REPORT_VIOLATIONS)
    context.on("console", on_console)


@pytest.fixture(autouse=True)
def csp_violations(chromium, monkeypatch) -> Iterator[list[str]]:
    """Every page a browser test opens is watched: a CSP violation fails the test.

    A test that provokes violations on purpose reads them here and clears the list.
    """
    violations: list[str] = []
    contexts = []
    new_context = chromium.new_context

    def watched_context(*args, **kwargs):
        context = new_context(*args, **kwargs)
        watch_csp(context, violations)
        contexts.append(context)
        return context

    monkeypatch.setattr(chromium, "new_context", watched_context)
    yield violations
    from playwright.sync_api import Error as PlaywrightError

    # A round trip to each open page delivers the reports it sent before it.
    for context in contexts:
        for page in context.pages:
            with contextlib.suppress(PlaywrightError):  # closed or navigating: nothing pending
                page.evaluate("0")
    if violations:
        pytest.fail(
            "The Content-Security-Policy was violated:\n" + "\n".join(violations), pytrace=False
        )


@pytest.fixture
def screenshot():
    """Save a full-page screenshot under build/test-artifacts/e2e/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
