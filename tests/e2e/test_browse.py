"""Applied work is reachable in Chromium: the apply record → the commit's diff → its branch.

The refactor is proposed, built and applied through the real services before the server
starts (the model's answer is a known one: the tiny random model cannot write edits; the
build runs as the task runner runs it); everything after that is the browser's.
"""

from __future__ import annotations

import re

import pytest
from django.test import override_settings
from playwright.sync_api import expect

from apps.generation.models import GenerationJob
from apps.ops.runner import run_task
from apps.ops.services import task_claim
from apps.refactors import services as refactor_services
from apps.refactors.models import Apply
from apps.repos import services as repo_services
from apps.repos.indexing import index_commit
from apps.workspaces.roles import Role
from tests import factories
from tests.refactors.conftest import PROJECT, REFACTOR_SETTINGS
from tests.refactors.test_flow import RENAME
from tests.repos.conftest import make_zip

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_server_env(tiny_model_dir):
    return {"QWEB_MODEL_DIR": str(tiny_model_dir), "QWEB_DEVICE": "cpu"}


@pytest.fixture
def applied(transactional_db, tmp_path, tiny_model_dir):
    """Ada's refactor of the billing project, accepted whole and applied to its own branch.

    The settings are overridden only while the services run: the live server, started
    next, reads the settings module's name, which an override hides.
    """
    with override_settings(QWEB_MODEL_DIR=tiny_model_dir, **REFACTOR_SETTINGS):
        return _refactor_apply(tmp_path)


def _refactor_apply(scratch):
    workspace = factories.workspace_create(name="Acme", slug="acme")
    ada = factories.user_create(email="ada@example.com", name="Ada Admin")
    membership = factories.membership_create(workspace=workspace, user=ada, role=Role.OWNER)
    archive = scratch / "shop.zip"
    make_zip(PROJECT, archive)
    repository = repo_services.repository_import_archive(
        workspace=workspace, user=ada, name="Shop", archive_path=archive, filename="shop.zip"
    )
    index_commit(repository=repository, sha=repository.head_sha)
    session = refactor_services.refactor_create(
        membership=membership,
        repository=repository,
        instruction="Rename total_with_tax to total_including_tax and document rounded()",
    )
    changeset = session.changesets.get()
    # "The model" answers; the job-finished hook queues the build, which the runner runs.
    GenerationJob.objects.filter(pk=changeset.job_id).update(
        state=GenerationJob.State.DONE, text=RENAME, finish_reason="stop"
    )
    refactor_services.changeset_job_finished(GenerationJob.objects.get(pk=changeset.job_id))
    for task in task_claim(worker="e2e", kinds=["refactor.build"]):
        run_task(task, "e2e")
    changeset.refresh_from_db()
    refactor_services.decisions_all(membership=membership, changeset=changeset, verdict="accept")
    record = refactor_services.changeset_apply(membership=membership, changeset=changeset)
    assert record.state == Apply.State.APPLIED
    return record


# The outermost elements that reach past the viewport's right edge, to say what overflows.
_TOO_WIDE = """
Array.from(document.querySelectorAll("body *"))
  .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
  .filter((el) => !el.parentElement.closest("pre, table.diff, .code-view"))
  .slice(0, 8)
  .map((el) => el.tagName.toLowerCase() + "." + [...el.classList].join(".") + " "
       + Math.round(el.getBoundingClientRect().right))
"""


def test_the_applied_branch_and_its_commit_diff_are_browsed(
    applied, live_server_url, chromium, screenshot
):
    session = applied.changeset.session
    branch = applied.target_branch
    assert branch == f"qweb/refactor-{session.pk}"
    context = chromium.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.goto(f"{live_server_url}/accounts/login/")
    page.fill("#id_username", "ada@example.com")
    page.fill("#id_password", factories.PASSWORD)
    page.click("main button[type=submit]")
    page.goto(f"{live_server_url}/w/acme/refactors/{session.pk}/")

    # The apply record links to its commit: message, author, parent and the diff viewer.
    page.get_by_test_id("apply-commit").click()
    expect(page).to_have_url(re.compile(rf"/commit/{applied.result_commit}/$"))
    expect(page.get_by_test_id("commit")).to_contain_text("Rename total_with_tax")
    expect(page.get_by_test_id("commit-author")).to_contain_text("Ada Admin")
    expect(page.get_by_test_id("commit-parents")).to_contain_text(applied.base_commit[:7])
    expect(page.get_by_test_id("commit-branch")).to_contain_text(branch)
    files = page.get_by_test_id("diff-file")
    expect(files).to_have_count(2)
    money = files.filter(has_text="billing/money.py")
    expect(money.locator("tr.ln-add").first).to_contain_text("total_including_tax")
    expect(money.locator("tr.ln-remove").first).to_contain_text("total_with_tax")
    expect(money.locator("tr.ln-add .k").first).to_be_visible()  # highlighted by Pygments
    screenshot(page, "browse-01-commit")

    # Side by side, in the same viewer.
    page.get_by_role("link", name="Split", exact=True).click()
    expect(page.locator("table.diff.split").first).to_be_visible()

    # The branch picker: filter, then open the refactor's branch (its name holds a slash).
    picker = page.get_by_test_id("ref-picker")
    picker.locator("summary").click()
    expect(picker.locator("[data-ref-filter]")).to_be_focused()
    page.keyboard.type("refactor")
    expect(picker.locator("li[data-ref-name='main']")).to_be_hidden()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/tree/{re.escape(branch)}/$"))
    expect(page.get_by_test_id("last-commit")).to_contain_text("Rename total_with_tax")
    expect(page.locator(".ref-picker-label")).to_have_text(branch)
    page.locator("summary", has_text="billing").click()  # folders open in place
    page.get_by_role("link", name="money.py").click()
    expect(page).to_have_url(re.compile(rf"/blob/{re.escape(branch)}/billing/money.py$"))
    expect(page.locator(".code-view")).to_contain_text("def total_including_tax(")
    screenshot(page, "browse-02-branch-file")

    # Its history, and the branch list with the refactor named.
    page.get_by_test_id("history-link").click()
    expect(page.get_by_test_id("history")).to_contain_text("Rename total_with_tax")
    page.get_by_role("link", name=re.compile("^Branches")).click()
    row = page.locator(f"li[data-branch='{branch}']")
    expect(row).to_contain_text("1 ahead")
    expect(row.locator(".badge-refactor")).to_be_visible()
    screenshot(page, "browse-03-branches")
    row.get_by_role("link", name="Compare").click()
    expect(page.get_by_test_id("compare-status")).to_contain_text("1 commit ahead")
    expect(page.get_by_test_id("diff-file")).to_have_count(2)
    screenshot(page, "browse-03b-compare")

    # At phone width nothing but the code and diff boxes scrolls sideways.
    phone = chromium.new_context(
        viewport={"width": 390, "height": 844}, storage_state=context.storage_state()
    )
    small = phone.new_page()
    for address in (
        f"/w/acme/r/shop/commit/{applied.result_commit}/",
        f"/w/acme/r/shop/tree/{branch}/",
        "/w/acme/r/shop/branches/",
        f"/w/acme/r/shop/compare/main...{branch}/",
    ):
        small.goto(live_server_url + address)
        width = small.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{address} is {width}px wide at 390px: {small.evaluate(_TOO_WIDE)}"
    small.goto(f"{live_server_url}/w/acme/r/shop/commit/{applied.result_commit}/")
    screenshot(small, "browse-04-commit-390")
    small.goto(f"{live_server_url}/w/acme/r/shop/tree/{branch}/")
    small.get_by_test_id("ref-picker").locator("summary").click()
    expect(small.locator(".ref-picker-menu")).to_be_visible()
    assert small.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(small, "browse-05-branch-picker-390")
