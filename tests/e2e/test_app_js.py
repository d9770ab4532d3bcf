"""static/js/app.js in Chromium under qweb's Content-Security-Policy: what templates once did
with inline handlers (confirm, submit on change, go back) and style="" (bar widths)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from csp.utils import build_policy

pytestmark = pytest.mark.e2e

STATIC = Path(__file__).resolve().parents[2] / "static"
ORIGIN = "https://qweb.test"
PAGE = """<!doctype html><html><head><script src="/static/js/app.js" defer></script></head>
<body><main>
<form method="post" action="/deleted" data-confirm="Delete this conversation for everyone?">
  <button type="submit" id="delete">Delete</button>
</form>
<form method="get" action="/list">
  <select name="repository" data-autosubmit>
    <option value="">All</option><option value="2">Two</option>
  </select>
</form>
<a href="/" id="back" data-history-back>Go back</a>
<div id="bars"><span id="seg" data-width="30"></span><span id="over" data-width="250"></span></div>
</main></body></html>"""


def _serve(route) -> None:
    url = urlsplit(route.request.url)
    headers = {"Content-Security-Policy": build_policy()}
    if url.path.startswith("/static/"):
        route.fulfill(path=str(STATIC / url.path.removeprefix("/static/")), headers=headers)
        return
    body = PAGE if url.path == "/page" else f"<!doctype html><title>{url.path}</title>{url.path}"
    route.fulfill(content_type="text/html", body=body, headers=headers)


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    context.route(f"{ORIGIN}/**", _serve)
    yield page
    context.close()
    assert errors == []


def test_a_confirmed_form_is_not_sent_when_the_person_cancels(page):
    page.goto(f"{ORIGIN}/page")
    questions: list[str] = []

    def dismiss(dialog):
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("#delete")
    page.wait_for_timeout(300)

    assert questions == ["Delete this conversation for everyone?"]
    assert urlsplit(page.url).path == "/page"


def test_a_confirmed_form_is_sent_when_the_person_agrees(page):
    page.goto(f"{ORIGIN}/page")
    page.once("dialog", lambda dialog: dialog.accept())

    with page.expect_navigation():
        page.click("#delete")

    assert urlsplit(page.url).path == "/deleted"


def test_choosing_an_option_submits_the_select_s_form(page):
    page.goto(f"{ORIGIN}/page")

    with page.expect_navigation():
        page.select_option("select[data-autosubmit]", "2")

    assert page.url == f"{ORIGIN}/list?repository=2"


def test_go_back_returns_to_the_previous_page(page):
    page.goto(f"{ORIGIN}/earlier")
    page.goto(f"{ORIGIN}/page")

    with page.expect_navigation():
        page.click("#back")

    assert urlsplit(page.url).path == "/earlier"


def test_go_back_in_a_fresh_tab_follows_the_link(page):
    page.goto(f"{ORIGIN}/earlier")
    with page.context.expect_page() as opened:
        page.evaluate("window.open('/page')")
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.evaluate("history.length") == 1

    with tab.expect_navigation():
        tab.click("#back")

    assert urlsplit(tab.url).path == "/"


def test_data_widths_are_applied_also_to_markup_inserted_later(page):
    page.goto(f"{ORIGIN}/page")

    widths = page.evaluate(
        """async () => {
            const box = document.createElement("div");
            box.innerHTML = '<div><span id="later" data-width="12"></span></div>';
            document.querySelector("main").append(box);
            await new Promise((resolve) => setTimeout(resolve, 0));
            return ["seg", "over", "later"].map((id) => document.getElementById(id).style.width);
        }"""
    )

    assert widths == ["30%", "100%", "12%"]
