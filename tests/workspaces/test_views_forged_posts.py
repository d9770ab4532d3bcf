"""Posts no page of ours would send: missing CSRF tokens, unknown roles, foreign ids."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.workspaces import services
from apps.workspaces.models import Invitation
from apps.workspaces.roles import Role
from tests.workspaces.helpers import membership_of

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def csrf_client(owner):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    return client


@pytest.fixture
def forgeable_posts(workspace, member, invite):
    slug = workspace.slug
    invitation, _ = invite()
    target = membership_of(member, workspace)
    return {
        "invite": (reverse("workspaces:invite", args=[slug]), {"email": "x@example.com"}),
        "revoke": (reverse("workspaces:invitation_revoke", args=[slug, invitation.pk]), {}),
        "change role": (
            reverse("workspaces:member_role", args=[slug, target.pk]),
            {"role": Role.ADMIN},
        ),
        "remove": (reverse("workspaces:member_remove", args=[slug, target.pk]), {}),
        "rename": (reverse("workspaces:settings", args=[slug]), {"name": "Forged"}),
        "delete": (reverse("workspaces:delete", args=[slug]), {"confirm_slug": slug}),
        "create": (reverse("workspaces:create"), {"name": "Forged", "slug": "forged"}),
    }


@pytest.mark.parametrize(
    "name", ["invite", "revoke", "change role", "remove", "rename", "delete", "create"]
)
def test_a_post_without_a_csrf_token_is_refused(
    csrf_client, workspace, forgeable_posts, workspace_state, name
):
    url, data = forgeable_posts[name]
    before = workspace_state(workspace)

    response = csrf_client.post(url, data)

    assert response.status_code == 403
    assert workspace_state(workspace) == before


def test_a_post_with_the_csrf_token_from_the_page_is_accepted(csrf_client, workspace):
    page = csrf_client.get(reverse("workspaces:settings", args=[workspace.slug]))

    response = csrf_client.post(
        reverse("workspaces:settings", args=[workspace.slug]),
        {"name": "Renamed", "csrfmiddlewaretoken": page.context["csrf_token"]},
    )

    assert response.status_code == 302
    workspace.refresh_from_db()
    assert workspace.name == "Renamed"


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain", "htmx"])
def test_an_unknown_role_is_refused_with_400(
    client, owner, member, workspace, workspace_state, headers
):
    target = membership_of(member, workspace)
    before = workspace_state(workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:member_role", args=[workspace.slug, target.pk]),
        {"role": "superuser"},
        **headers,
    )

    assert response.status_code == 400
    assert workspace_state(workspace) == before


def test_an_invitation_with_an_unknown_role_is_refused_with_400(
    client, owner, workspace, workspace_state
):
    before = workspace_state(workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:invite", args=[workspace.slug]),
        {"email": "x@example.com", "role": "superuser"},
    )

    assert response.status_code == 400
    assert response.context["invite_form"].errors["role"]
    assert workspace_state(workspace) == before


def test_an_htmx_invitation_with_errors_returns_the_fragment(client, owner, workspace):
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:invite", args=[workspace.slug]),
        {"email": "not-an-address", "role": Role.MEMBER},
        **HTMX,
    )

    assert response.templates[0].name == "workspaces/_invitations.html"
    assert not Invitation.objects.exists()


@pytest.fixture
def foreign_membership(outsider):
    """A membership in another workspace (the outsider's own)."""
    return outsider.memberships.get()


def test_a_role_change_for_a_membership_of_another_workspace_is_refused(
    client, owner, workspace, foreign_membership, workspace_state
):
    before = workspace_state(foreign_membership.workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:member_role", args=[workspace.slug, foreign_membership.pk]),
        {"role": Role.VIEWER},
        follow=True,
    )

    assert response.redirect_chain == [(reverse("workspaces:members", args=["acme"]), 302)]
    assert "not a member of this workspace" in response.content.decode()
    assert workspace_state(foreign_membership.workspace) == before


def test_an_htmx_role_change_for_a_membership_of_another_workspace_is_refused_with_400(
    client, owner, workspace, foreign_membership, workspace_state
):
    before = workspace_state(foreign_membership.workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:member_role", args=[workspace.slug, foreign_membership.pk]),
        {"role": Role.VIEWER},
        **HTMX,
    )

    assert response.status_code == 400
    assert "not a member of this workspace" in response.content.decode()
    assert workspace_state(foreign_membership.workspace) == before


def test_removing_a_membership_of_another_workspace_is_refused(
    client, owner, workspace, foreign_membership, workspace_state
):
    before = workspace_state(foreign_membership.workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:member_remove", args=[workspace.slug, foreign_membership.pk]),
        **HTMX,
    )

    assert response.status_code == 400
    assert workspace_state(foreign_membership.workspace) == before


def test_revoking_an_invitation_of_another_workspace_is_refused(
    client, owner, workspace, outsider, workspace_state
):
    elsewhere = outsider.memberships.get()
    foreign, _ = services.invitation_create(actor=elsewhere, email="x@example.com")
    before = workspace_state(elsewhere.workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:invitation_revoke", args=[workspace.slug, foreign.pk])
    )

    assert response.status_code == 302
    foreign.refresh_from_db()
    assert foreign.state == "pending"
    assert workspace_state(elsewhere.workspace) == before
