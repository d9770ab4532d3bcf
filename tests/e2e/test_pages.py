"""Every main page at a desktop's and a phone's width: it fits, and axe finds nothing serious.

The workspace behind the pages is made through the real services before the server starts
(an imported, indexed repository, a conversation with a finished answer, a refactor session
whose proposal the real hook and build turned into a review), so the server's own worker has
nothing to claim and every page shows what it shows in use.

axe-core (``tests/e2e/vendor/axe-core``, test-only) is injected through Playwright's
``evaluate``, which the page's Content-Security-Policy does not govern: axe runs on the page
as served, in the same context whose CSP violations fail the test. Screenshots of each page
at both widths are saved under build/test-artifacts/e2e/ (``page-<name>-<width>.png``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse
from playwright.sync_api import expect

from apps.chat import services as chat_services
from apps.generation.hooks import job_finished_hooks_run
from apps.generation.models import GenerationJob
from apps.refactors import services as refactor_services
from apps.workspaces import services as workspace_services
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from tests import factories
from tests.refactors.conftest import project_import, proposal_write
from tests.refactors.test_flow import RENAME

pytestmark = pytest.mark.e2e

AXE = (Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js").read_text()
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
SERIOUS = ("serious", "critical")
ANSWER = (
    "The total with tax is computed by `total_with_tax` in "
    "`billing/money.py`, called from `invoice_total`:\n\n"
    "```python\ndef invoice_total(request, amount):\n"
    "    return rounded(total_with_tax(amount, 0.2))  # a long line that needs its own "
    "sideways scroll inside the code box, and never the page's\n```\n\n"
    "| file | role |\n|---|---|\n| billing/money.py | the helpers |\n"
)


@dataclass(frozen=True)
class Site:
    """What the pages show: Ada owns the workspace, Vic only views it."""

    slug: str
    repository_slug: str
    conversation_id: int
    session_id: int
    # A proposal's commit: the commit page, and the base of the compare page.
    proposal_commit: str


SETTINGS = {
    "QWEB_CONTEXT_TOKENS": 0,
    "QWEB_CONTEXT_WINDOW": 0,
    "QWEB_CHAT_ANSWER_TOKENS": 48,
    "QWEB_REFACTOR_ANSWER_TOKENS": 256,
    "QWEB_CHAT_RATE_COUNT": 1000,
}


@pytest.fixture
def site(transactional_db, tmp_path, tiny_model_dir) -> Site:
    # Overridden only while the site is built: the live server takes the settings module's
    # name from the settings, which an override hides.
    with override_settings(QWEB_MODEL_DIR=tiny_model_dir, **SETTINGS):
        return _site_build(tmp_path)


def _site_build(tmp_path) -> Site:
    workspace = factories.workspace_create(name="Acme Platform Engineering", slug="acme")
    ada = factories.user_create(email="ada@example.com", name="Ada Lovelace-Byron")
    vic = factories.user_create(email="vic@example.com", name="Vic Viewer")
    owner = factories.membership_create(workspace=workspace, user=ada, role=Role.OWNER)
    factories.membership_create(workspace=workspace, user=vic, role=Role.VIEWER)
    factories.membership_create(
        workspace=workspace,
        user=factories.user_create(
            email="a.very.long.address.of.someone.in.accounting@subsidiary.example.com",
            name="Maximiliane Oberhauser-Wittgenstein",
        ),
        role=Role.MEMBER,
    )
    workspace_services.invitation_create(
        actor=owner, email="bob.builder@example.com", role=Role.MEMBER
    )
    repository = project_import(workspace=workspace, owner=ada, scratch=tmp_path)

    conversation = chat_services.conversation_create(membership=owner, repository=repository)
    answer = chat_services.conversation_post_message(
        membership=owner,
        conversation=conversation,
        text="Where is the total with tax computed, and who calls it?",
    )
    GenerationJob.objects.filter(pk=answer.job_id).update(
        state=GenerationJob.State.DONE,
        text=ANSWER,
        prompt_tokens=1234,
        completion_tokens=56,
        finish_reason="stop",
    )
    job_finished_hooks_run(GenerationJob.objects.get(pk=answer.job_id))

    changeset = proposal_write(
        membership=owner,
        repository=repository,
        answer=RENAME,
        instruction="Rename total_with_tax to total_including_tax everywhere",
    )
    # A conversation on the diff: a thread with a reply, and a suggested change.
    thread = refactor_services.comment_add(
        membership=owner, changeset=changeset, path="billing/money.py", line=6, body="An alias?"
    )
    refactor_services.comment_reply(
        membership=owner, changeset=changeset, thread_id=thread.pk, body="No callers are left."
    )
    refactor_services.suggestion_add(
        membership=owner,
        changeset=changeset,
        path="billing/money.py",
        start=7,
        length=1,
        suggested='    """The amount with tax included."""',
    )
    return Site(
        slug=workspace.slug,
        repository_slug=repository.slug,
        conversation_id=conversation.pk,
        session_id=changeset.session_id,
        proposal_commit=changeset.commit,
    )


@pytest.fixture
def live_server_env(site, tiny_model_dir):
    # The site is built first, so the server's worker finds no job to claim.
    return {
        "QWEB_MODEL_DIR": str(tiny_model_dir),
        "QWEB_DEVICE": "cpu",
        "QWEB_CHAT_ANSWER_TOKENS": str(SETTINGS["QWEB_CHAT_ANSWER_TOKENS"]),
        "QWEB_REFACTOR_ANSWER_TOKENS": str(SETTINGS["QWEB_REFACTOR_ANSWER_TOKENS"]),
    }


def _pages(site: Site) -> dict[str, str]:
    """Each main page's name and path; the sign-in page is opened signed out."""
    ws, repo = site.slug, site.repository_slug
    return {
        "workspaces": reverse("workspaces:home"),
        "workspace": reverse("workspaces:detail", args=[ws]),
        "members": reverse("workspaces:members", args=[ws]),
        "settings": reverse("workspaces:settings", args=[ws]),
        "repositories": reverse("repos:index", args=[ws]),
        "new-repository": reverse("repos:new", args=[ws]),
        "tree": reverse("repos:tree", args=[ws, repo]),
        "blob": reverse("repos:blob", args=[ws, repo, "main", "billing/money.py"]) + "#L-6",
        "commits": reverse("repos:commits", args=[ws, repo]),
        "branches": reverse("repos:branches", args=[ws, repo]),
        "commit": reverse("repos:commit", args=[ws, repo, site.proposal_commit]),
        "compare": reverse("repos:compare", args=[ws, repo, f"main...{site.proposal_commit}"]),
        "search": reverse("repos:search", args=[ws, repo]) + "?q=total+with+tax",
        "search-symbols": reverse("repos:search", args=[ws, repo]) + "?q=rounded&kind=symbols",
        "chat": reverse("chat:index", args=[ws]),
        "conversation": reverse("chat:detail", args=[ws, site.conversation_id]),
        "refactors": reverse("refactors:index", args=[ws]),
        "review": reverse("refactors:detail", args=[ws, site.session_id]),
        "profile": reverse("accounts:profile"),
        "password": reverse("accounts:password_change"),
        "not-found": f"/w/{ws}/r/no-such-repository/",
    }


def _sign_in(chromium, url: str, email: str, viewport: dict):
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(f"{url}/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", factories.PASSWORD)
    page.click("main button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))
    return page


def _settle(page, name: str) -> None:
    """Wait until what the page loads after it opens is there."""
    page.wait_for_load_state("networkidle")
    if name == "review":
        # Diffs load as their file comes into view.
        page.locator(".file-diff").first.scroll_into_view_if_needed()
        expect(page.locator(".file-diff .hunk").first).to_be_visible(timeout=30_000)
        page.evaluate("() => window.scrollTo(0, 0)")
    if name == "conversation":
        expect(page.locator("#live-state")).to_have_attribute("data-state", "live")


# What sticks out past the viewport's right edge, outside any box that scrolls by itself.
_OVERFLOW = """() => {
    const width = window.innerWidth;
    const scrolls = (el) => {
        for (let p = el.parentElement; p; p = p.parentElement) {
            const x = getComputedStyle(p).overflowX;
            if ((x === "auto" || x === "scroll" || x === "hidden" || x === "clip")
                && p !== document.documentElement && p !== document.body) return true;
        }
        return false;
    };
    const wide = [];
    for (const el of document.body.querySelectorAll("*")) {
        const box = el.getBoundingClientRect();
        if (box.width && box.right > width + 0.5 && !scrolls(el)) {
            wide.push(el.tagName.toLowerCase() + (el.id ? "#" + el.id : "")
                + (el.className && typeof el.className === "string"
                    ? "." + el.className.trim().split(/\\s+/).join(".") : "")
                + " (right edge " + Math.round(box.right) + ")");
        }
    }
    return {scroll: document.documentElement.scrollWidth, inner: width, wide: wide.slice(0, 8)};
}"""

_AXE_RUN = """async () => {
    const result = await axe.run(document, {resultTypes: ["violations"]});
    return result.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 4).map((n) => n.target.join(" ") + ": "
            + (n.failureSummary || "").replace(/\\s+/g, " ").slice(0, 240)),
        count: v.nodes.length,
    }));
}"""


def _overflow(page) -> str:
    measured = page.evaluate(_OVERFLOW)
    if measured["scroll"] <= measured["inner"]:
        return ""
    return f"scrollWidth {measured['scroll']} > innerWidth {measured['inner']}; wide: " + ", ".join(
        measured["wide"]
    )


def _axe(page) -> list[str]:
    """axe-core's serious and critical violations on the page, one readable line each."""
    # A function body, so no script element is added (the policy would refuse an inline one).
    assert page.evaluate(f"() => {{ {AXE}\n; return typeof window.axe; }}") == "object"
    violations = page.evaluate(_AXE_RUN)
    return [
        f"{v['id']} ({v['impact']}, {v['count']}×): {v['help']}\n      "
        + "\n      ".join(v["nodes"])
        for v in violations
        if v["impact"] in SERIOUS
    ]


def _check(page, name: str, width: str, screenshot, problems: list[str]) -> None:
    _settle(page, name)
    screenshot(page, f"page-{name}-{width}")
    overflow = _overflow(page)
    if overflow:
        problems.append(f"{name} at {width}: {overflow}")
    for violation in _axe(page):
        problems.append(f"{name} at {width}: {violation}")


def test_every_main_page_fits_a_phone_and_has_no_serious_accessibility_violation(
    site, live_server_url, chromium, screenshot
):
    problems: list[str] = []
    for width, viewport in WIDTHS.items():
        signed_out = chromium.new_context(viewport=viewport).new_page()
        signed_out.goto(f"{live_server_url}/accounts/login/")
        _check(signed_out, "sign-in", width, screenshot, problems)
        signed_out.context.close()

        page = _sign_in(chromium, live_server_url, "ada@example.com", viewport)
        for name, path in _pages(site).items():
            response = page.goto(live_server_url + path)
            assert response.status == (404 if name == "not-found" else 200), (name, path)
            _check(page, name, width, screenshot, problems)
        page.context.close()

    assert not problems, "Pages that overflow or fail axe:\n  " + "\n  ".join(problems)


def test_a_viewer_sees_no_composer_and_no_review_controls(site, live_server_url, chromium):
    for viewport in WIDTHS.values():
        vic = _sign_in(chromium, live_server_url, "vic@example.com", viewport)

        vic.goto(live_server_url + _pages(site)["conversation"])
        expect(vic.locator("#viewer-note")).to_be_visible()
        expect(vic.locator("#composer, #composer-text, #send-button")).to_have_count(0)
        expect(vic.locator("main kbd")).to_have_count(0)  # no Enter/Esc hints to act on

        vic.goto(live_server_url + _pages(site)["review"])
        _settle(vic, "review")
        review = vic.get_by_test_id("review")
        deciding = review.locator("[data-decide], [data-decide-file], [data-decide-all]")
        expect(deciding).to_have_count(0)
        expect(review.locator(".comment-add, #apply-form, #apply-button")).to_have_count(0)
        expect(review.get_by_role("button", name=re.compile("Accept|Reject|Apply"))).to_have_count(
            0
        )
        expect(review).not_to_contain_text("accept · ")  # no a/r key hints
        expect(vic.get_by_role("button", name="Regenerate")).to_have_count(0)
        vic.context.close()


def _tab_to(page, selector: str, limit: int = 30) -> int:
    """Press Tab until the element matching ``selector`` has the focus; the presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return presses
    raise AssertionError(f"Tab never reached {selector} in {limit} presses")


def test_the_phone_menus_open_from_the_keyboard_and_every_control_is_reachable(
    site, live_server_url, chromium, screenshot
):
    page = _sign_in(chromium, live_server_url, "ada@example.com", WIDTHS["phone"])
    page.goto(live_server_url + _pages(site)["members"])
    toggle = page.get_by_test_id("menu-toggle")
    menu = page.locator("#site-menu")
    expect(menu).to_be_hidden()

    # The header's menu: Tab to its button, Enter opens it, Tab walks into it, Esc closes it.
    _tab_to(page, "[data-testid=menu-toggle]", limit=5)
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    expect(menu).to_be_visible()
    _tab_to(page, "[data-testid=workspace-switcher] > summary", limit=3)
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name=re.compile("New workspace"))).to_be_visible()
    screenshot(page, "page-menu-open-phone")
    page.keyboard.press("Escape")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_hidden()

    # The workspace tabs collapse the same way; Enter on a tab follows it.
    _tab_to(page, ".tabs-toggle")
    page.keyboard.press("Enter")
    expect(page.locator("#workspace-tabs")).to_be_visible()
    screenshot(page, "page-tabs-open-phone")
    _tab_to(page, "#workspace-tabs a[href$='/chat/']", limit=6)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/w/acme/chat/$"))

    # Every visible control of the members page takes the focus from the keyboard.
    page.goto(live_server_url + _pages(site)["members"])
    controls = page.evaluate(
        """() => {
            const all = document.querySelectorAll(
                "a[href], button, input:not([type=hidden]), select, textarea, summary");
            let n = 0;
            for (const el of all) {
                const box = el.getBoundingClientRect();
                if (box.width && box.height && getComputedStyle(el).visibility !== "hidden"
                    && !el.disabled) el.dataset.kbd = String(n++);
            }
            return n;
        }"""
    )
    reached = set()
    for _ in range(controls * 2 + 5):
        page.keyboard.press("Tab")
        index = page.evaluate("() => document.activeElement.dataset.kbd ?? null")
        if index is not None:
            reached.add(index)
    missing = page.evaluate(
        """(reached) => [...document.querySelectorAll("[data-kbd]")]
            .filter((el) => !reached.includes(el.dataset.kbd))
            .map((el) => el.outerHTML.slice(0, 120))""",
        sorted(reached),
    )
    assert controls > 10 and not missing, missing
    assert Membership.objects.filter(workspace__slug="acme").count() == 3
