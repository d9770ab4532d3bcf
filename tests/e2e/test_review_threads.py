"""Conversation on the diff in Chromium: two people, one session.

Ada (owner, desktop) comments on a line; Bob (member, phone) replies and Ada resolves the
thread, live on both pages; Bob jumps to the next unresolved thread with n; Bob suggests a
change to a hunk and Ada accepts it, which makes proposal 2 on both pages, with the thread
carried to it. The model is the scripted server of test_refactor.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.refactors.models import ChangeSet, ReviewComment, Suggestion
from apps.repos import services as repo_services
from apps.repos.indexing import index_commit
from apps.workspaces.roles import Role
from tests import factories
from tests.e2e.test_refactor import (  # noqa: F401 - fixtures
    _ScriptedModel,
    live_server_env,
    scripted_model,
)
from tests.e2e.test_review_team import DESKTOP, MONEY, PHONE, _review_open, _sign_in
from tests.refactors.conftest import PROJECT
from tests.refactors.test_flow import RENAME, read
from tests.repos.conftest import make_zip

pytestmark = pytest.mark.e2e

MONEY_PATH = "billing/money.py"


def _comment(page, line: int, body: str) -> None:
    row = page.get_by_test_id(MONEY).locator(f'tr[data-side="new"][data-line="{line}"]')
    row.hover()
    row.locator(".comment-add").click()
    page.locator(".comment-form textarea").fill(body)
    page.locator(".comment-form button[type=submit]").click()


def test_two_reviewers_talk_in_threads_jump_between_them_and_accept_a_suggestion(
    live_server_url, chromium, screenshot, tmp_path, settings, tiny_model_dir
):
    workspace = factories.workspace_create(name="Acme", slug="acme")
    people = {}
    for key, name, role in (("ada", "Ada Owner", Role.OWNER), ("bob", "Bob Reviewer", Role.MEMBER)):
        people[key] = factories.user_create(email=f"{key}@example.com", name=name)
        factories.membership_create(workspace=workspace, user=people[key], role=role)
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
    _ScriptedModel.answers.extend([RENAME])

    ada = _sign_in(chromium, live_server_url, "ada@example.com", DESKTOP)
    ada.goto(f"{live_server_url}/w/acme/refactors/")
    ada.fill("#new-refactor textarea[name=instruction]", "Rename total_with_tax everywhere")
    ada.click("#new-refactor button[type=submit]")
    expect(ada).to_have_url(re.compile(r"/w/acme/refactors/\d+/$"))
    bob = _sign_in(chromium, live_server_url, "bob@example.com", PHONE)
    bob.goto(ada.url)
    money = {"ada": _review_open(ada, 1), "bob": _review_open(bob, 1)}

    # Ada starts a thread on the renamed line; Bob replies from his phone, live.
    _comment(ada, 6, "Do callers outside billing use the old name?")
    for page in money.values():
        expect(page.get_by_test_id("thread")).to_have_count(1)
    first = money["bob"].get_by_test_id("thread")
    first.locator("textarea[name=body]").fill("Only the views; they are renamed too.")
    first.get_by_role("button", name="Reply").click()
    for page in money.values():
        thread = page.get_by_test_id("thread")
        expect(thread).to_contain_text("Only the views; they are renamed too.")
        expect(thread).to_contain_text("Bob Reviewer")
        expect(thread.locator("time").first).to_have_attribute(
            "datetime", re.compile(r"^\d{4}-\d\d-\d\dT")
        )

    # Ada resolves it: both pages show who did.
    money["ada"].get_by_test_id("thread-resolve").click()
    for page in money.values():
        expect(page.get_by_test_id("thread")).to_have_attribute("data-resolved", "true")
        expect(page.get_by_test_id("thread-resolved")).to_contain_text("Resolved by Ada Owner")
    assert ReviewComment.objects.get(thread=None).resolved_by == people["ada"]
    screenshot(ada, "review-threads-01-resolved-desktop")
    screenshot(bob, "review-threads-02-resolved-phone")

    # A second thread, open: n jumps past the resolved one to it and focuses it.
    _comment(ada, 45, "Say it rounds half up?")
    expect(money["bob"].get_by_test_id("thread")).to_have_count(2)
    open_thread = money["bob"].locator('[data-testid="thread"][data-resolved="false"]')
    bob.locator("body").click(position={"x": 5, "y": 5})
    bob.keyboard.press("n")
    expect(open_thread).to_be_focused()
    assert bob.evaluate("document.activeElement.getBoundingClientRect().top >= 0")

    # Bob suggests a new docstring in the first hunk; Ada accepts it into proposal 2.
    hunk = money["bob"].locator('.hunk[data-hunk="0"]')
    hunk.get_by_test_id("suggest-change").locator("summary").click()
    editor = hunk.locator("textarea[name=suggested]")
    text = editor.input_value()
    assert '"""The amount with tax added."""' in text
    editor.fill(text.replace("tax added", "tax included"))
    hunk.get_by_role("button", name="Suggest", exact=True).click()
    suggestion = money["ada"].get_by_test_id("suggestion")
    expect(suggestion).to_contain_text("Bob Reviewer suggested a change")
    expect(suggestion.locator(".ln-add")).to_have_text(re.compile("tax included"))
    expect(suggestion.locator(".ln-remove")).to_have_text(re.compile("tax added"))
    screenshot(bob, "review-threads-03-suggestion-phone")
    suggestion.get_by_test_id("suggestion-accept").click()

    money = {"ada": _review_open(ada, 2), "bob": _review_open(bob, 2)}
    newer = ChangeSet.objects.get(number=2)
    assert Suggestion.objects.get().result == newer
    assert '"""The amount with tax included."""' in read(
        repository, newer.commit, "billing/money.py"
    )
    for page in money.values():
        expect(page.locator('.hunk[data-hunk="0"]')).to_contain_text("tax included")
        # The threads came along: the resolved one at its line, from proposal 1.
        expect(page.get_by_test_id("thread")).to_have_count(2)
        expect(page.get_by_test_id("thread").first).to_contain_text("From proposal 1")
    screenshot(ada, "review-threads-04-new-proposal-desktop")
    screenshot(bob, "review-threads-05-new-proposal-phone")
