"""The first minutes of a team: sign in, create a workspace, invite someone, they join."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from apps.accounts.models import User
from apps.workspaces.models import Invitation, Membership, Workspace
from tests import factories

pytestmark = pytest.mark.e2e


def test_an_admin_creates_a_workspace_and_an_invited_person_joins_it(
    live_server_url, chromium, screenshot
):
    factories.user_create(email="ada@example.com", name="Ada Admin", password="admin-password-1")

    admin_context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = admin_context.new_page()
    page.goto(f"{live_server_url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    screenshot(page, "01-login")

    page.fill("#id_username", "ADA@example.com")  # e-mail is matched without case
    page.fill("#id_password", "admin-password-1")
    page.click("main button[type=submit]")
    expect(page.get_by_role("heading", name="No workspaces yet")).to_be_visible()
    screenshot(page, "02-empty-home")

    page.get_by_role("button", name="Create your first workspace").click()
    page.fill("#id_name", "Acme Platform")
    expect(page.locator("#id_slug")).to_have_value("acme-platform")  # suggested from the name
    page.click("main button[type=submit]")
    expect(page.get_by_role("heading", name="Acme Platform")).to_be_visible()
    screenshot(page, "03-workspace")

    page.get_by_role("link", name="Members").click()
    page.fill("#id_email", "bob@example.com")
    page.select_option("#id_role", "member")
    page.get_by_role("button", name="Send invitation").click()
    link_input = page.locator("#new-invitation-link")
    expect(link_input).to_be_visible()
    link = link_input.input_value()
    assert re.fullmatch(rf"{live_server_url}/invitations/[\w-]+/", link)
    expect(page.locator("#invitations")).to_contain_text("bob@example.com")
    screenshot(page, "04-invited")

    bob_context = chromium.new_context(viewport={"width": 1280, "height": 860})
    bob = bob_context.new_page()
    bob.goto(link)
    expect(bob.get_by_role("heading", name="Join Acme Platform")).to_be_visible()
    bob.fill("#id_name", "Bob Builder")
    bob.fill("#id_password", "bobs-own-password-9")
    bob.fill("#id_password_again", "bobs-own-password-9")
    screenshot(bob, "05-accept")
    bob.get_by_role("button", name="Create account and join").click()
    expect(bob.get_by_role("heading", name="Acme Platform")).to_be_visible()
    expect(bob.locator(".ws-head")).to_contain_text("Member")
    screenshot(bob, "06-joined")

    # The admin's open members page learns about the new member over the websocket.
    expect(page.locator("#member-table")).to_contain_text("Bob Builder", timeout=10_000)
    screenshot(page, "07-members-live")

    # The link is single use.
    bob.goto(link)
    expect(bob.get_by_role("alert")).to_contain_text("already been used")

    workspace = Workspace.objects.get(slug="acme-platform")
    bob_user = User.objects.get(email="bob@example.com")
    assert Membership.objects.get(workspace=workspace, user=bob_user).role == "member"
    invitation = Invitation.objects.get(workspace=workspace, email="bob@example.com")
    assert invitation.accepted_by == bob_user
    admin_context.close()
    bob_context.close()
