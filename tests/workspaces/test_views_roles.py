"""What each role may do in a workspace, through the real views: status codes and stored state.

Every refusal also checks that nothing changed; every success checks the change was stored.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.workspaces.models import Invitation, Membership, Workspace
from apps.workspaces.roles import Role
from tests import factories
from tests.workspaces.helpers import membership_of

OWNER, ADMIN, MEMBER, VIEWER = Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER
EVERY_ROLE = [OWNER, ADMIN, MEMBER, VIEWER]
NON_OWNERS = [ADMIN, MEMBER, VIEWER]
NON_MANAGERS = [MEMBER, VIEWER]

# (actor, role to invite): the roles each actor may hand out. Admins up to admin, owners any.
INVITATIONS_ALLOWED = [
    (OWNER, OWNER),
    (OWNER, ADMIN),
    (OWNER, MEMBER),
    (OWNER, VIEWER),
    (ADMIN, ADMIN),
    (ADMIN, MEMBER),
    (ADMIN, VIEWER),
]

# (actor, target's role, new role) for someone else's membership. Admins manage viewers,
# members and admins among themselves; only owners touch owners or make owners.
ROLE_CHANGES_ALLOWED = [
    *[(OWNER, target, new) for target in EVERY_ROLE for new in EVERY_ROLE if new != target],
    (ADMIN, VIEWER, MEMBER),
    (ADMIN, VIEWER, ADMIN),
    (ADMIN, MEMBER, VIEWER),
    (ADMIN, MEMBER, ADMIN),
    (ADMIN, ADMIN, VIEWER),
    (ADMIN, ADMIN, MEMBER),
]
ROLE_CHANGES_REFUSED = [
    (ADMIN, OWNER, ADMIN),
    (ADMIN, OWNER, MEMBER),
    (ADMIN, OWNER, VIEWER),
    (ADMIN, VIEWER, OWNER),
    (ADMIN, MEMBER, OWNER),
    (ADMIN, ADMIN, OWNER),
    *[
        (actor, target, new)
        for actor in NON_MANAGERS
        for target in EVERY_ROLE
        for new in EVERY_ROLE
        if new != target
    ],
]

# (actor, target's role) for removing someone else.
REMOVALS_ALLOWED = [(OWNER, role) for role in EVERY_ROLE] + [
    (ADMIN, ADMIN),
    (ADMIN, MEMBER),
    (ADMIN, VIEWER),
]
REMOVALS_REFUSED = [(ADMIN, OWNER)] + [
    (actor, target) for actor in NON_MANAGERS for target in EVERY_ROLE
]


@pytest.fixture
def signed_in(client, users_by_role):
    """A test client signed in as the workspace member with the given role."""

    def sign_in(role: Role):
        client.force_login(users_by_role[role])
        return client

    return sign_in


# Overview and members ------------------------------------------------------------------------


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_every_role_can_view_the_overview(signed_in, workspace, role):
    response = signed_in(role).get(reverse("workspaces:detail", args=[workspace.slug]))

    assert response.status_code == 200
    assert response.context["membership"].role == role
    assert response.context["member_count"] == 4


@pytest.mark.parametrize("role", EVERY_ROLE)
def test_every_role_can_view_the_members(signed_in, workspace, users_by_role, role):
    response = signed_in(role).get(reverse("workspaces:members", args=[workspace.slug]))

    assert response.status_code == 200
    listed = {m.user for m in response.context["members"]}
    assert listed == set(users_by_role.values())
    for user in users_by_role.values():
        assert user.email in response.content.decode()


@pytest.mark.parametrize("role", [OWNER, ADMIN])
def test_owners_and_admins_see_pending_invitations(signed_in, workspace, invite, role):
    invite("pending@example.com")

    response = signed_in(role).get(reverse("workspaces:members", args=[workspace.slug]))

    assert response.context["manages"] is True
    assert "pending@example.com" in response.content.decode()


@pytest.mark.parametrize("role", NON_MANAGERS)
def test_members_and_viewers_do_not_see_pending_invitations(signed_in, workspace, invite, role):
    invite("pending@example.com")

    response = signed_in(role).get(reverse("workspaces:members", args=[workspace.slug]))

    assert response.status_code == 200
    assert response.context["manages"] is False
    assert "pending@example.com" not in response.content.decode()


# Inviting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("actor", "invited_role"), INVITATIONS_ALLOWED)
def test_owners_and_admins_can_invite_the_roles_they_may_hand_out(
    signed_in, workspace, actor, invited_role
):
    response = signed_in(actor).post(
        reverse("workspaces:invite", args=[workspace.slug]),
        {"email": "new@example.com", "role": invited_role},
    )

    assert response.status_code == 200
    assert response.context["new_link"].startswith("http://testserver/invitations/")
    invitation = Invitation.objects.get(workspace=workspace)
    assert (invitation.email, invitation.role, invitation.state) == (
        "new@example.com",
        invited_role,
        "pending",
    )


def test_an_admin_cannot_invite_an_owner(signed_in, workspace, workspace_state):
    before = workspace_state(workspace)

    response = signed_in(ADMIN).post(
        reverse("workspaces:invite", args=[workspace.slug]),
        {"email": "new@example.com", "role": OWNER},
    )

    assert response.status_code == 400
    assert response.context["invite_form"].errors["role"]
    assert workspace_state(workspace) == before


@pytest.mark.parametrize("actor", NON_MANAGERS)
@pytest.mark.parametrize("invited_role", EVERY_ROLE)
def test_members_and_viewers_cannot_invite(
    signed_in, workspace, workspace_state, actor, invited_role
):
    before = workspace_state(workspace)

    response = signed_in(actor).post(
        reverse("workspaces:invite", args=[workspace.slug]),
        {"email": "new@example.com", "role": invited_role},
    )

    assert response.status_code == 403
    assert workspace_state(workspace) == before


# Revoking invitations ------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [OWNER, ADMIN])
def test_owners_and_admins_can_revoke_an_invitation(signed_in, workspace, invite, actor):
    invitation, _ = invite()

    response = signed_in(actor).post(
        reverse("workspaces:invitation_revoke", args=[workspace.slug, invitation.pk])
    )

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.state == "revoked"


@pytest.mark.parametrize("actor", NON_MANAGERS)
def test_members_and_viewers_cannot_revoke_an_invitation(signed_in, workspace, invite, actor):
    invitation, _ = invite()

    response = signed_in(actor).post(
        reverse("workspaces:invitation_revoke", args=[workspace.slug, invitation.pk])
    )

    assert response.status_code == 403
    invitation.refresh_from_db()
    assert invitation.state == "pending"


# Changing roles ------------------------------------------------------------------------------


@pytest.mark.parametrize(("actor", "target_role", "new_role"), ROLE_CHANGES_ALLOWED)
def test_a_role_change_within_the_actors_powers_is_stored(
    signed_in, workspace, actor, target_role, new_role
):
    target = factories.membership_create(workspace=workspace, role=target_role)

    response = signed_in(actor).post(
        reverse("workspaces:member_role", args=[workspace.slug, target.pk]), {"role": new_role}
    )

    assert response.status_code == 302
    target.refresh_from_db()
    assert target.role == new_role


@pytest.mark.parametrize(("actor", "target_role", "new_role"), ROLE_CHANGES_REFUSED)
def test_a_role_change_beyond_the_actors_powers_is_refused(
    signed_in, workspace, workspace_state, actor, target_role, new_role
):
    target = factories.membership_create(workspace=workspace, role=target_role)
    before = workspace_state(workspace)

    response = signed_in(actor).post(
        reverse("workspaces:member_role", args=[workspace.slug, target.pk]), {"role": new_role}
    )

    assert response.status_code == 403
    assert workspace_state(workspace) == before


@pytest.mark.parametrize("actor", NON_MANAGERS)
def test_members_and_viewers_cannot_promote_themselves(signed_in, workspace, users_by_role, actor):
    own = membership_of(users_by_role[actor], workspace)

    response = signed_in(actor).post(
        reverse("workspaces:member_role", args=[workspace.slug, own.pk]), {"role": OWNER}
    )

    assert response.status_code == 403
    own.refresh_from_db()
    assert own.role == actor


def test_an_admin_cannot_make_themselves_owner(signed_in, workspace, users_by_role):
    own = membership_of(users_by_role[ADMIN], workspace)

    response = signed_in(ADMIN).post(
        reverse("workspaces:member_role", args=[workspace.slug, own.pk]), {"role": OWNER}
    )

    assert response.status_code == 403
    own.refresh_from_db()
    assert own.role == ADMIN


# Removing members ----------------------------------------------------------------------------


@pytest.mark.parametrize(("actor", "target_role"), REMOVALS_ALLOWED)
def test_a_removal_within_the_actors_powers_deletes_the_membership(
    signed_in, workspace, actor, target_role
):
    target = factories.membership_create(workspace=workspace, role=target_role)

    response = signed_in(actor).post(
        reverse("workspaces:member_remove", args=[workspace.slug, target.pk])
    )

    assert response.status_code == 302
    assert response.url == reverse("workspaces:members", args=[workspace.slug])
    assert not Membership.objects.filter(pk=target.pk).exists()


@pytest.mark.parametrize(("actor", "target_role"), REMOVALS_REFUSED)
def test_a_removal_beyond_the_actors_powers_is_refused(
    signed_in, workspace, workspace_state, actor, target_role
):
    target = factories.membership_create(workspace=workspace, role=target_role)
    before = workspace_state(workspace)

    response = signed_in(actor).post(
        reverse("workspaces:member_remove", args=[workspace.slug, target.pk])
    )

    assert response.status_code == 403
    assert workspace_state(workspace) == before


# Leaving -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", NON_OWNERS)
def test_admins_members_and_viewers_can_leave(signed_in, workspace, users_by_role, role):
    own = membership_of(users_by_role[role], workspace)

    response = signed_in(role).post(
        reverse("workspaces:member_remove", args=[workspace.slug, own.pk])
    )

    assert response.status_code == 302
    assert response.url == reverse("workspaces:home")
    assert not Membership.objects.filter(pk=own.pk).exists()
    assert Membership.objects.filter(workspace=workspace).count() == 3


def test_an_owner_can_leave_when_another_owner_remains(signed_in, workspace, users_by_role):
    factories.membership_create(workspace=workspace, role=OWNER)
    own = membership_of(users_by_role[OWNER], workspace)

    response = signed_in(OWNER).post(
        reverse("workspaces:member_remove", args=[workspace.slug, own.pk])
    )

    assert response.status_code == 302
    assert response.url == reverse("workspaces:home")
    assert not Membership.objects.filter(pk=own.pk).exists()


# Workspace settings --------------------------------------------------------------------------


def test_an_owner_can_open_the_settings(signed_in, workspace):
    response = signed_in(OWNER).get(reverse("workspaces:settings", args=[workspace.slug]))

    assert response.status_code == 200
    assert response.context["rename_form"].initial["name"] == "Acme"


@pytest.mark.parametrize("role", NON_OWNERS)
def test_only_owners_can_open_the_settings(signed_in, workspace, role):
    response = signed_in(role).get(reverse("workspaces:settings", args=[workspace.slug]))

    assert response.status_code == 403


def test_an_owner_can_rename_the_workspace(signed_in, workspace):
    response = signed_in(OWNER).post(
        reverse("workspaces:settings", args=[workspace.slug]), {"name": "  Acme Labs  "}
    )

    assert response.status_code == 302
    workspace.refresh_from_db()
    assert (workspace.name, workspace.slug) == ("Acme Labs", "acme")


@pytest.mark.parametrize("role", NON_OWNERS)
def test_only_owners_can_rename_the_workspace(signed_in, workspace, workspace_state, role):
    before = workspace_state(workspace)

    response = signed_in(role).post(
        reverse("workspaces:settings", args=[workspace.slug]), {"name": "Hijacked"}
    )

    assert response.status_code == 403
    assert workspace_state(workspace) == before


def test_renaming_to_a_blank_name_is_refused(signed_in, workspace):
    response = signed_in(OWNER).post(
        reverse("workspaces:settings", args=[workspace.slug]), {"name": "   "}
    )

    assert response.status_code == 400
    assert response.context["rename_form"].errors["name"]
    workspace.refresh_from_db()
    assert workspace.name == "Acme"


def test_an_owner_can_delete_the_workspace_with_everything_in_it(signed_in, workspace, invite):
    invite()

    response = signed_in(OWNER).post(
        reverse("workspaces:delete", args=[workspace.slug]), {"confirm_slug": "acme"}
    )

    assert response.status_code == 302
    assert response.url == reverse("workspaces:home")
    assert not Workspace.objects.filter(pk=workspace.pk).exists()
    assert not Membership.objects.filter(workspace_id=workspace.pk).exists()
    assert not Invitation.objects.filter(workspace_id=workspace.pk).exists()


def test_deleting_needs_the_exact_address_typed(signed_in, workspace, workspace_state):
    before = workspace_state(workspace)

    response = signed_in(OWNER).post(
        reverse("workspaces:delete", args=[workspace.slug]), {"confirm_slug": "acme-typo"}
    )

    assert response.status_code == 400
    assert response.context["delete_form"].errors["confirm_slug"]
    assert workspace_state(workspace) == before


@pytest.mark.parametrize("role", NON_OWNERS)
def test_only_owners_can_delete_the_workspace(signed_in, workspace, workspace_state, role):
    before = workspace_state(workspace)

    response = signed_in(role).post(
        reverse("workspaces:delete", args=[workspace.slug]), {"confirm_slug": "acme"}
    )

    assert response.status_code == 403
    assert workspace_state(workspace) == before


def test_leaving_through_htmx_redirects_the_whole_page_home(client, member, workspace):
    own = membership_of(member, workspace)
    client.force_login(member)

    response = client.post(
        reverse("workspaces:member_remove", args=[workspace.slug, own.pk]),
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("workspaces:home")
    assert not Membership.objects.filter(pk=own.pk).exists()
