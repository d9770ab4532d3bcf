"""Chromium enforces qweb's Content-Security-Policy: what an injection would try is refused.

The pages' own behaviour under the policy is checked by every other browser test, which
fails on any violation (``csp_violations`` in conftest.py); here the violations are wanted,
so each test reads them and clears the list.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import _free_port

pytestmark = pytest.mark.e2e

# Each attempt runs on qweb's sign-in page and sets window.injected if it gets through.
ATTEMPTS = {
    "inline script element": (
        "const s = document.createElement('script');"
        " s.textContent = 'window.injected = true'; document.head.append(s);",
        "script-src-elem",
    ),
    "inline handler through innerHTML": (
        "const box = document.createElement('div'); document.body.append(box);"
        ' box.innerHTML = \'<img src="/no-such.png" onerror="window.injected = true">\';',
        "script-src-attr",
    ),
    "javascript: link": (
        "const a = document.createElement('a'); a.href = 'javascript:window.injected = true';"
        " document.body.append(a); a.click();",
        "script-src-elem",
    ),
    # A string to compile later: Playwright's own evaluate may eval, a timer's code may not.
    "eval": ('setTimeout("window.injected = true", 0);', "script-src"),
    "inline style attribute": (
        "const box = document.createElement('div'); document.body.append(box);"
        ' box.innerHTML = \'<p id="styled" style="color: rgb(255, 0, 0)">x</p>\';'
        " window.injected = getComputedStyle(document.getElementById('styled')).color"
        " === 'rgb(255, 0, 0)';",
        "style-src-attr",
    ),
    "inline style element": (
        "const st = document.createElement('style'); st.textContent = 'body { color: red }';"
        " document.head.append(st);"
        " window.injected = getComputedStyle(document.body).color === 'rgb(255, 0, 0)';",
        "style-src-elem",
    ),
}


_WATCH = """async () => {
    const seen = [];
    document.addEventListener("securitypolicyviolation",
        (event) => seen.push(event.effectiveDirective));
"""
_REPORT = """
    await new Promise((resolve) => setTimeout(resolve, 300));
    return {seen, injected: window.injected === true};
}"""


def attempt_on(page, script: str) -> dict:
    """Run ``script`` in the page; the directives it violated, and whether it got through."""
    # Playwright's evaluate itself is not held to the policy; what the script does is.
    return page.evaluate(_WATCH + script + _REPORT)


@pytest.fixture
def sign_in_page(live_server_url, chromium):
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{live_server_url}/accounts/login/")
    yield page
    context.close()


@pytest.mark.parametrize("attempt", ATTEMPTS, ids=list(ATTEMPTS))
def test_the_policy_refuses_an_injection_and_the_tests_hear_of_it(
    sign_in_page, csp_violations, attempt
):
    script, directive = ATTEMPTS[attempt]

    seen = attempt_on(sign_in_page, script)

    assert seen == {"seen": [directive], "injected": False}
    sign_in_page.evaluate("0")  # deliver the page's reports to the watcher
    assert any(report.startswith(directive) for report in csp_violations), csp_violations
    csp_violations.clear()


def test_websockets_may_reach_this_server_and_no_other(
    sign_in_page, live_server_url, csp_violations
):
    elsewhere = f"ws://127.0.0.1:{_free_port()}/ws/"

    result = sign_in_page.evaluate(
        """async (elsewhere) => {
            const refused = [];
            document.addEventListener("securitypolicyviolation",
                (event) => refused.push([event.effectiveDirective, event.blockedURI]));
            const attempt = (url) => new Promise((resolve) => {
                const socket = new WebSocket(url);
                socket.onopen = () => { socket.close(); resolve("open"); };
                socket.onerror = () => resolve("error");
            });
            // 'self' covers ws: of the page's own host and port (CSP Level 3).
            await attempt("ws://" + location.host + "/ws/w/nowhere/");
            await attempt(elsewhere);
            await new Promise((resolve) => setTimeout(resolve, 300));
            return refused;
        }""",
        elsewhere,
    )

    assert [directive for directive, _ in result] == ["connect-src"]
    assert result[0][1].startswith(elsewhere.removesuffix("/ws/"))
    sign_in_page.evaluate("0")
    assert [report.split()[0] for report in csp_violations if "console" not in report] == [
        "connect-src"
    ]
    csp_violations.clear()


def test_htmx_is_configured_to_need_neither_inline_styles_nor_eval(sign_in_page):
    config = sign_in_page.evaluate(
        """() => ({
            indicatorStyles: htmx.config.includeIndicatorStyles,
            eval: htmx.config.allowEval,
            settles: htmx.config.attributesToSettle,
            styleElements: document.querySelectorAll("style").length,
        })"""
    )

    assert config == {
        "indicatorStyles": False,
        "eval": False,
        "settles": ["class", "width", "height"],
        "styleElements": 0,
    }


def test_htmx_swaps_an_element_whose_style_a_script_touched_without_a_violation(
    sign_in_page, csp_violations
):
    # A CSSOM write leaves style="" behind (Playwright's screenshots do it to the focused
    # field); htmx copied such attributes onto the new element with setAttribute, refused.
    result = sign_in_page.evaluate(
        """async () => {
            const refused = [];
            document.addEventListener("securitypolicyviolation",
                (event) => refused.push(event.effectiveDirective));
            const box = document.createElement("div");
            box.id = "probe";
            box.innerHTML = '<input id="probe-input">';
            document.querySelector("main").append(box);
            const input = document.getElementById("probe-input");
            input.style.color = "red";
            input.style.color = "";
            htmx.swap("#probe", '<div id="probe"><input id="probe-input" value="new"></div>',
                {swapStyle: "outerHTML", settleDelay: 0});
            await new Promise((resolve) => setTimeout(resolve, 300));
            return {refused, value: document.getElementById("probe-input").value};
        }"""
    )

    assert result == {"refused": [], "value": "new"}
    assert csp_violations == []
