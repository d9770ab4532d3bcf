"""Bring a project in through the browser, then browse it."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from playwright.sync_api import expect

from apps.repos.models import Repository
from apps.workspaces.roles import Role
from tests import factories

pytestmark = pytest.mark.e2e


def _project_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("shop-1.0/manage.py", "import sys\n\nprint(sys.argv)\n")
        archive.writestr(
            "shop-1.0/shop/models.py",
            "from django.db import models\n\n\nclass Order(models.Model):\n"
            "    total = models.DecimalField(max_digits=9, decimal_places=2)\n",
        )
        archive.writestr("shop-1.0/.git/config", "[core]\n\tfsmonitor = evil\n")
    return buffer.getvalue()


def test_a_member_uploads_an_archive_and_browses_the_imported_code(
    live_server_url, chromium, screenshot, tmp_path
):
    workspace = factories.workspace_create(name="Shop", slug="shop")
    user = factories.user_create(email="mia@example.com", password="mias-password-1")
    factories.membership_create(workspace=workspace, user=user, role=Role.MEMBER)
    archive = tmp_path / "shop-1.0.zip"
    archive.write_bytes(_project_zip())

    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(f"{live_server_url}/accounts/login/")
    page.fill("#id_username", "mia@example.com")
    page.fill("#id_password", "mias-password-1")
    page.click("main button[type=submit]")

    page.goto(f"{live_server_url}/w/shop/repos/")
    expect(page.get_by_role("heading", name="No repositories yet")).to_be_visible()
    page.get_by_role("button", name="Add a repository").click()
    page.fill("#id_name", "Shop")
    page.set_input_files("#id_archive", str(archive))
    page.get_by_role("button", name="Upload and import").click()
    expect(page.locator("#task")).to_contain_text("Done", timeout=20_000)
    screenshot(page, "10-import-done")

    page.get_by_role("button", name="Open Shop").click()
    expect(page.locator(".tree-card")).to_contain_text("manage.py")
    expect(page.locator(".tree-card")).not_to_contain_text(".git")
    page.locator(".tree-dir > summary", has_text="shop").click()  # a folder
    page.get_by_role("link", name=re.compile("models.py")).click()
    expect(page.locator(".code-view")).to_contain_text("class Order(models.Model):")
    expect(page.locator(".code-view .k").first).to_be_visible()  # highlighted by Pygments
    page.locator(".code-view a[href='#L-4']").click()
    expect(page).to_have_url(re.compile(r"#L-4$"))
    screenshot(page, "11-file-view")

    repository = Repository.objects.get(workspace=workspace, slug="shop")
    assert repository.created_by == user
    assert len(repository.head_sha) == 40
    context.close()
