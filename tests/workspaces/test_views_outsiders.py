"""People outside a workspace learn nothing about it: 404 everywhere, nothing changes."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.workspaces.roles import Role
from tests.workspaces.helpers import membership_of


@pytest.fixture
def scoped_requests(workspace, owner, member, invite):
    """(method, url, data) for every workspace-scoped URL, aimed at real objects in it."""
    slug = workspace.slug
    invitation, _ = invite()
    target = membership_of(member, workspace)
    return {
        "overview": ("get", reverse("workspaces:detail", args=[slug]), {}),
        "members": ("get", reverse("workspaces:members", args=[slug]), {}),
        "invite": (
            "post",
            reverse("workspaces:invite", args=[slug]),
            {"email": "sneaky@example.com", "role": Role.OWNER},
        ),
        "revoke": (
            "post",
            reverse("workspaces:invitation_revoke", args=[slug, invitation.pk]),
            {},
        ),
        "change role": (
            "post",
            reverse("workspaces:member_role", args=[slug, target.pk]),
            {"role": Role.OWNER},
        ),
        "remove": ("post", reverse("workspaces:member_remove", args=[slug, target.pk]), {}),
        "settings": ("get", reverse("workspaces:settings", args=[slug]), {}),
        "rename": ("post", reverse("workspaces:settings", args=[slug]), {"name": "Mine now"}),
        "delete": ("post", reverse("workspaces:delete", args=[slug]), {"confirm_slug": slug}),
    }


def without_csrf_tokens(content: bytes) -> bytes:
    # CSRF tokens are masked afresh for every response.
    return re.sub(rb'(csrfmiddlewaretoken" value="|X-CSRFToken": ")[^"]+', rb"\1", content)


SCOPED_URLS = [
    "overview",
    "members",
    "invite",
    "revoke",
    "change role",
    "remove",
    "settings",
    "rename",
    "delete",
]


@pytest.mark.parametrize("name", SCOPED_URLS)
def test_an_outsider_gets_404_for_every_workspace_url(
    client, outsider, workspace, scoped_requests, workspace_state, name
):
    method, url, data = scoped_requests[name]
    before = workspace_state(workspace)
    client.force_login(outsider)

    response = getattr(client, method)(url, data)

    assert response.status_code == 404
    assert workspace_state(workspace) == before


@pytest.mark.parametrize("name", SCOPED_URLS)
def test_an_anonymous_visitor_is_sent_to_sign_in(
    client, workspace, scoped_requests, workspace_state, name
):
    method, url, data = scoped_requests[name]
    before = workspace_state(workspace)

    response = getattr(client, method)(url, data)

    assert response.status_code == 302
    assert response.url == f"{reverse('accounts:login')}?next={url}"
    assert workspace_state(workspace) == before


def test_a_member_gets_404_for_a_workspace_that_does_not_exist(client, member):
    client.force_login(member)

    response = client.get(reverse("workspaces:detail", args=["no-such-team"]))

    assert response.status_code == 404


def test_a_404_for_another_workspace_looks_like_one_for_a_missing_workspace(
    client, outsider, workspace
):
    client.force_login(outsider)

    existing = client.get(reverse("workspaces:detail", args=[workspace.slug]))
    missing = client.get(reverse("workspaces:detail", args=["no-such-team"]))

    assert existing.status_code == missing.status_code == 404
    assert without_csrf_tokens(existing.content) == without_csrf_tokens(missing.content)


def test_an_outsider_does_not_see_the_workspace_on_their_home_page(client, outsider, workspace):
    client.force_login(outsider)

    response = client.get(reverse("workspaces:home"))

    assert [ws.slug for ws in response.context["workspaces"]] == ["elsewhere"]
    assert "Acme" not in response.content.decode()


def test_an_anonymous_visitor_is_sent_to_sign_in_from_the_home_page(client, db):
    response = client.get(reverse("workspaces:home"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))
