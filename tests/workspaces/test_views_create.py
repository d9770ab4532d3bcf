"""Creating a workspace: the creator becomes its owner; bad addresses save nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.workspaces.models import RESERVED_SLUGS, Membership, Workspace
from apps.workspaces.roles import Role
from tests import factories


@pytest.fixture
def newcomer(db):
    """A signed-up user in no workspace yet."""
    return factories.user_create(email="newcomer@example.com")


@pytest.fixture
def signed_in(client, newcomer):
    client.force_login(newcomer)
    return client


def test_a_signed_in_user_can_create_a_workspace_and_owns_it(signed_in, newcomer):
    response = signed_in.post(
        reverse("workspaces:create"), {"name": "  Data Team ", "slug": "data-team"}
    )

    assert response.status_code == 302
    assert response.url == reverse("workspaces:detail", args=["data-team"])
    workspace = Workspace.objects.get(slug="data-team")
    assert (workspace.name, workspace.created_by) == ("Data Team", newcomer)
    assert list(workspace.memberships.values_list("user", "role")) == [(newcomer.pk, Role.OWNER)]


def test_the_create_form_opens(signed_in):
    response = signed_in.get(reverse("workspaces:create"))

    assert response.status_code == 200


def test_a_taken_address_is_refused_with_a_clear_message_and_nothing_half_saved(
    signed_in, newcomer, workspace
):
    memberships_before = Membership.objects.count()

    response = signed_in.post(
        reverse("workspaces:create"), {"name": "Copycat", "slug": workspace.slug}
    )

    assert response.status_code == 200
    assert response.context["form"].errors["slug"] == [
        "That address is taken by another workspace."
    ]
    assert "That address is taken by another workspace." in response.content.decode()
    assert Workspace.objects.count() == 1
    assert Membership.objects.count() == memberships_before
    assert not Workspace.objects.filter(name="Copycat").exists()


@pytest.mark.parametrize("slug", sorted(RESERVED_SLUGS))
def test_a_reserved_address_is_refused(signed_in, slug):
    response = signed_in.post(reverse("workspaces:create"), {"name": "Team", "slug": slug})

    assert response.status_code == 200
    assert "reserved" in str(response.context["form"].errors["slug"])
    assert not Workspace.objects.filter(slug=slug).exists()
    assert not Workspace.objects.filter(name="Team").exists()


@pytest.mark.parametrize(
    "slug",
    ["-team", "team-", "my team", "team_a", "tëam", "a" * 51, "", "team/../admin"],
)
def test_a_malformed_address_is_refused(signed_in, slug):
    response = signed_in.post(reverse("workspaces:create"), {"name": "Team", "slug": slug})

    assert response.status_code == 200
    assert response.context["form"].errors["slug"]
    assert not Workspace.objects.exists()
    assert not Membership.objects.exists()


def test_an_uppercase_address_is_lowercased(signed_in):
    response = signed_in.post(reverse("workspaces:create"), {"name": "Team", "slug": "Team-A"})

    assert response.status_code == 302
    assert Workspace.objects.get(name="Team").slug == "team-a"


def test_a_blank_name_is_refused(signed_in):
    response = signed_in.post(reverse("workspaces:create"), {"name": "  ", "slug": "team"})

    assert response.context["form"].errors["name"]
    assert not Workspace.objects.exists()


def test_the_home_page_lists_the_users_workspaces_with_member_counts(client, owner, member):
    client.force_login(owner)

    response = client.get(reverse("workspaces:home"))

    assert response.status_code == 200
    [listed] = response.context["workspaces"]
    assert (listed.slug, listed.member_count) == ("acme", 2)
