"""A team reviews one refactor in Chromium: four people, four browsers, one session.

Ada (owner) asks for the change and applies it; Bob and Cy (members) review, Cy on a phone;
Vic (viewer) watches on a phone. Decisions show who made them, live on every page; Bob and
Cy decide the same hunk at the same moment and both pages end showing the one stored
decision; Bob's approval is cleared when Cy regenerates the proposal; Ada's apply is refused
until the policy's approval is there. The model is the scripted server of test_refactor.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.refactors.models import Apply, HunkDecision, ProposalReview, RefactorPolicy
from apps.repos import services as repo_services
from apps.repos.indexing import index_commit
from apps.workspaces.roles import Role
from tests import factories
from tests.e2e.test_refactor import (  # noqa: F401 - fixtures
    _ScriptedModel,
    live_server_env,
    scripted_model,
)
from tests.refactors.conftest import PROJECT
from tests.refactors.test_flow import RENAME
from tests.repos.conftest import make_zip

pytestmark = pytest.mark.e2e

DESKTOP = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}
MONEY = "file-billing/money.py"

# Clicks a hunk's verdict button at an agreed moment, so two pages send at once.
_CLICK_AT = """([at, verdict]) => {
  const button = document.querySelector(
    '[data-testid="file-billing/money.py"] .hunk[data-hunk="1"] [data-decide="' + verdict + '"]');
  setTimeout(() => button.click(), at - Date.now());
}"""


def _sign_in(chromium, live_server_url, email, viewport):
    context = chromium.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(f"{live_server_url}/accounts/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", factories.PASSWORD)
    page.click("main button[type=submit]")
    expect(page).not_to_have_url(re.compile("/accounts/login/"))
    return page


def _review_open(page, number: int):
    """The page shows proposal ``number`` ready for review, with money.py's two hunks."""
    expect(page.get_by_test_id("reviews")).to_have_attribute(
        "data-proposal", str(number), timeout=60_000
    )
    expect(page.locator("#live-state")).to_have_attribute("data-state", "live", timeout=10_000)
    money = page.get_by_test_id(MONEY)
    money.scroll_into_view_if_needed()
    expect(money.locator(".hunk")).to_have_count(2, timeout=30_000)
    return money


def test_a_team_reviews_decides_at_once_approves_and_applies_under_the_policy(
    live_server_url, chromium, screenshot, tmp_path, settings, tiny_model_dir
):
    workspace = factories.workspace_create(name="Acme", slug="acme")
    people = {}
    for key, name, role in (
        ("ada", "Ada Owner", Role.OWNER),
        ("bob", "Bob Reviewer", Role.MEMBER),
        ("cy", "Cy Reviewer", Role.MEMBER),
        ("vic", "Vic Viewer", Role.VIEWER),
    ):
        people[key] = factories.user_create(email=f"{key}@example.com", name=name)
        factories.membership_create(workspace=workspace, user=people[key], role=role)
    RefactorPolicy.objects.create(workspace=workspace, required_approvals=1)
    archive = tmp_path / "shop.zip"
    make_zip(PROJECT, archive)
    repository = repo_services.repository_import_archive(
        workspace=workspace,
        user=people["ada"],
        name="Shop",
        archive_path=archive,
        filename="shop.zip",
    )
    settings.QWEB_MODEL_DIR = tiny_model_dir
    index_commit(repository=repository, sha=repository.head_sha)
    _ScriptedModel.answers.extend([RENAME, RENAME])

    ada = _sign_in(chromium, live_server_url, "ada@example.com", DESKTOP)
    ada.goto(f"{live_server_url}/w/acme/refactors/")
    ada.fill("#new-refactor textarea[name=instruction]", "Rename total_with_tax everywhere")
    ada.click("#new-refactor button[type=submit]")
    expect(ada).to_have_url(re.compile(r"/w/acme/refactors/\d+/$"))
    session_url = ada.url
    bob = _sign_in(chromium, live_server_url, "bob@example.com", DESKTOP)
    cy = _sign_in(chromium, live_server_url, "cy@example.com", PHONE)
    vic = _sign_in(chromium, live_server_url, "vic@example.com", PHONE)
    for page in (bob, cy, vic):
        page.goto(session_url)
    pages = {"ada": ada, "bob": bob, "cy": cy, "vic": vic}
    money = {key: _review_open(page, 1) for key, page in pages.items()}

    # The viewer sees the review, and no control of it.
    expect(vic.locator("[data-decide], [data-decide-file], [data-decide-all]")).to_have_count(0)
    expect(vic.get_by_test_id("approve")).to_have_count(0)
    expect(vic.get_by_role("button", name="Regenerate")).to_have_count(0)

    # Bob accepts the first hunk: every page shows it is his, with when.
    money["bob"].locator('.hunk[data-hunk="0"] [data-decide="accept"]').click()
    for key in ("ada", "cy", "vic", "bob"):
        first = money[key].locator('.hunk[data-hunk="0"]')
        expect(first).to_have_attribute("data-verdict", "accept")
        expect(first.locator(".hunk-verdict")).to_contain_text("accepted by Bob Reviewer")
        expect(first.locator(".hunk-verdict time")).to_have_attribute(
            "datetime", re.compile(r"^\d{4}-\d\d-\d\dT")
        )

    # Bob and Cy decide the second hunk at the same moment, one accepting, one rejecting.
    at = bob.evaluate("Date.now()") + 600
    bob.evaluate(_CLICK_AT, [at, "accept"])
    cy.evaluate(_CLICK_AT, [at, "reject"])
    stored = None
    for _ in range(50):
        stored = HunkDecision.objects.filter(path="billing/money.py", hunk=1).first()
        if stored:
            break
        ada.wait_for_timeout(100)
    assert stored is not None
    winner = stored.decided_by.display_name
    for key in ("ada", "bob", "cy", "vic"):
        second = money[key].locator('.hunk[data-hunk="1"]')
        expect(second).to_have_attribute("data-verdict", stored.verdict)
        expect(second.locator(".hunk-verdict")).to_contain_text(f"by {winner}")
    loser = cy if stored.verdict == "accept" else bob
    expect(loser.locator("#messages")).to_contain_text("Not saved")
    assert HunkDecision.objects.filter(path="billing/money.py", hunk=1).count() == 1
    screenshot(bob, "review-team-01-concurrent-desktop")
    screenshot(cy, "review-team-02-concurrent-phone")

    # Ada approves her own proposal: it does not count. Bob approves: it does, live.
    ada.get_by_test_id("reviews").locator("textarea").fill("My own change.")
    ada.get_by_test_id("approve").click()
    for page in pages.values():
        expect(page.get_by_test_id("review-list")).to_contain_text("Ada Owner")
        expect(page.get_by_test_id("approval-status")).to_contain_text("needs 1 approval, has 0")
    expect(ada.get_by_test_id("review-list")).to_contain_text("their own proposal")
    bob.get_by_test_id("reviews").locator("textarea").fill("Looks right to me.")
    bob.get_by_test_id("approve").click()
    for page in pages.values():
        expect(page.get_by_test_id("review-list")).to_contain_text("Looks right to me.")
        expect(page.get_by_test_id("approval-status")).to_contain_text("1 of 1 approval")
    expect(ada.get_by_test_id("apply-gate")).to_have_count(0)
    screenshot(vic, "review-team-03-approved-phone")

    # Cy regenerates: proposal 2 replaces the approved one and its approvals are gone.
    cy.get_by_role("button", name="Regenerate").click()
    money = {key: _review_open(page, 2) for key, page in pages.items()}
    for page in pages.values():
        expect(page.get_by_test_id("review-list")).to_contain_text("No reviews of proposal 2")
        expect(page.get_by_test_id("approval-status")).to_contain_text("needs 1 approval, has 0")
    ada.goto(f"{live_server_url}/w/acme/refactors/")
    expect(ada.get_by_test_id("session-approvals")).to_contain_text("0/1 approval")
    ada.goto(session_url)
    _review_open(ada, 2)

    # Ada accepts everything; applying is refused with what is missing, then allowed.
    ada.locator("[data-decide-all=accept]").click()
    expect(ada.get_by_test_id(MONEY)).to_have_attribute("data-verdict", "accept")
    expect(ada.get_by_test_id(MONEY).locator(".verdict-badge")).to_contain_text(
        "accepted by Ada Owner"
    )
    ada.get_by_role("button", name="Apply the accepted changes").click()
    expect(ada.locator("#messages")).to_contain_text(
        "Not applied: this proposal needs 1 approval, has 0."
    )
    assert not Apply.objects.exists()
    _review_open(ada, 2)
    _review_open(bob, 2)
    bob.get_by_test_id("approve").click()
    expect(ada.get_by_test_id("approval-status")).to_contain_text("1 of 1 approval")
    screenshot(ada, "review-team-04-ready-desktop")
    ada.get_by_role("button", name="Apply the accepted changes").click()
    expect(ada.locator("#messages")).to_contain_text("Applied as", timeout=30_000)
    record = Apply.objects.get(state=Apply.State.APPLIED)
    assert record.changeset.number == 2
    assert list(
        ProposalReview.objects.filter(changeset=record.changeset).values_list(
            "reviewer__name", "state"
        )
    ) == [("Bob Reviewer", "approve")]
    expect(ada.get_by_test_id("applies")).to_contain_text(record.result_commit[:10])
    screenshot(ada, "review-team-05-applied-desktop")
    screenshot(cy, "review-team-06-applied-phone")
