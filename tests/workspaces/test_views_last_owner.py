"""A workspace always keeps at least one owner."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from tests import factories
from tests.workspaces.helpers import membership_of

LAST_OWNER_MESSAGE = "A workspace needs at least one owner."
HTMX = {"HTTP_HX_REQUEST": "true"}


def test_the_last_owner_cannot_leave(client, owner, member, workspace, workspace_state):
    own = membership_of(owner, workspace)
    before = workspace_state(workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:member_remove", args=[workspace.slug, own.pk]), follow=True
    )

    assert response.redirect_chain == [(reverse("workspaces:members", args=["acme"]), 302)]
    assert LAST_OWNER_MESSAGE in response.content.decode()
    assert workspace_state(workspace) == before


def test_the_last_owner_leaving_through_htmx_gets_400(client, owner, workspace, workspace_state):
    own = membership_of(owner, workspace)
    before = workspace_state(workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:member_remove", args=[workspace.slug, own.pk]), **HTMX
    )

    assert response.status_code == 400
    assert LAST_OWNER_MESSAGE in response.content.decode()
    assert workspace_state(workspace) == before


@pytest.mark.parametrize("new_role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
def test_the_last_owner_cannot_demote_themselves(
    client, owner, workspace, workspace_state, new_role
):
    own = membership_of(owner, workspace)
    before = workspace_state(workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:member_role", args=[workspace.slug, own.pk]),
        {"role": new_role},
        follow=True,
    )

    assert response.redirect_chain == [(reverse("workspaces:members", args=["acme"]), 302)]
    assert LAST_OWNER_MESSAGE in response.content.decode()
    assert workspace_state(workspace) == before


def test_the_last_owner_demoting_themselves_through_htmx_gets_400(
    client, owner, workspace, workspace_state
):
    own = membership_of(owner, workspace)
    before = workspace_state(workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:member_role", args=[workspace.slug, own.pk]),
        {"role": Role.ADMIN},
        **HTMX,
    )

    assert response.status_code == 400
    assert LAST_OWNER_MESSAGE in response.content.decode()
    assert workspace_state(workspace) == before


def test_with_two_owners_one_can_leave(client, owner, workspace):
    other = factories.membership_create(workspace=workspace, role=Role.OWNER)
    client.force_login(owner)

    response = client.post(
        reverse(
            "workspaces:member_remove", args=[workspace.slug, membership_of(owner, workspace).pk]
        )
    )

    assert response.status_code == 302
    assert list(Membership.objects.filter(workspace=workspace)) == [other]


def test_with_two_owners_one_can_demote_themselves_and_loses_owner_powers(client, owner, workspace):
    factories.membership_create(workspace=workspace, role=Role.OWNER)
    own = membership_of(owner, workspace)
    client.force_login(owner)

    response = client.post(
        reverse("workspaces:member_role", args=[workspace.slug, own.pk]),
        {"role": Role.ADMIN},
        **HTMX,
    )

    assert response.status_code == 200
    assert response.context["membership"].role == Role.ADMIN
    own.refresh_from_db()
    assert own.role == Role.ADMIN
    assert client.get(reverse("workspaces:settings", args=["acme"])).status_code == 403


def test_an_owner_can_remove_another_owner_but_not_leave_the_workspace_ownerless(
    client, owner, workspace
):
    other = factories.membership_create(workspace=workspace, role=Role.OWNER)
    client.force_login(owner)
    client.post(reverse("workspaces:member_remove", args=[workspace.slug, other.pk]))

    response = client.post(
        reverse(
            "workspaces:member_remove", args=[workspace.slug, membership_of(owner, workspace).pk]
        )
    )

    assert not Membership.objects.filter(pk=other.pk).exists()
    assert response.status_code == 302
    assert Membership.objects.filter(workspace=workspace, role=Role.OWNER).count() == 1
