"""The workspace services called directly: every rule, and nothing saved when one refuses."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from apps.accounts.models import User
from apps.workspaces import services
from apps.workspaces.models import Invitation, Membership, Workspace
from apps.workspaces.roles import Role
from tests import factories
from tests.workspaces.helpers import membership_of

STRONG_PASSWORD = "a-long-and-unusual-passphrase"


@pytest.fixture
def as_role(users_by_role, workspace):
    """The membership of the workspace member with the given role."""
    return lambda role: membership_of(users_by_role[role], workspace)


# workspace_create ----------------------------------------------------------------------------


def test_workspace_create_makes_the_user_its_owner(db):
    user = factories.user_create()

    workspace = services.workspace_create(user=user, name=" Data ", slug=" Data-Team ")

    assert (workspace.name, workspace.slug, workspace.created_by) == ("Data", "data-team", user)
    assert list(workspace.memberships.values_list("user", "role")) == [(user.pk, Role.OWNER)]


def test_workspace_create_refuses_a_taken_slug_and_saves_nothing(workspace):
    user = factories.user_create()

    with pytest.raises(ValidationError) as error:
        services.workspace_create(user=user, name="Copy", slug="ACME")

    assert error.value.message_dict == {"slug": ["That address is taken by another workspace."]}
    assert list(Workspace.objects.values_list("slug", flat=True)) == ["acme"]
    assert not Membership.objects.filter(user=user).exists()


@pytest.mark.parametrize("slug", ["new", "admin", "ws", "invitations", "ACCOUNTS"])
def test_workspace_create_refuses_a_reserved_slug(db, slug):
    with pytest.raises(ValidationError) as error:
        services.workspace_create(user=factories.user_create(), name="Team", slug=slug)

    assert "reserved" in error.value.message_dict["slug"][0]
    assert not Workspace.objects.exists()
    assert not Membership.objects.exists()


@pytest.mark.parametrize("slug", ["-x", "x-", "a b", "a_b", "a" * 51, ""])
def test_workspace_create_refuses_a_malformed_slug(db, slug):
    with pytest.raises(ValidationError) as error:
        services.workspace_create(user=factories.user_create(), name="Team", slug=slug)

    assert "slug" in error.value.message_dict
    assert not Workspace.objects.exists()


def test_workspace_create_refuses_a_blank_name(db):
    with pytest.raises(ValidationError) as error:
        services.workspace_create(user=factories.user_create(), name="  ", slug="team")

    assert "name" in error.value.message_dict
    assert not Workspace.objects.exists()


# workspace_rename and workspace_delete -------------------------------------------------------


def test_workspace_rename_stores_the_stripped_name(as_role, workspace):
    services.workspace_rename(actor=as_role(Role.OWNER), name="  Acme Labs ")

    workspace.refresh_from_db()
    assert workspace.name == "Acme Labs"


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
def test_workspace_rename_is_for_owners_only(as_role, workspace, role):
    with pytest.raises(PermissionDenied):
        services.workspace_rename(actor=as_role(role), name="Hijacked")

    workspace.refresh_from_db()
    assert workspace.name == "Acme"


def test_workspace_rename_refuses_a_blank_or_overlong_name(as_role, workspace):
    for name in ["", "   ", "x" * 81]:
        with pytest.raises(ValidationError):
            services.workspace_rename(actor=as_role(Role.OWNER), name=name)

    workspace.refresh_from_db()
    assert workspace.name == "Acme"


def test_workspace_delete_removes_the_workspace_and_its_memberships(as_role, workspace):
    services.workspace_delete(actor=as_role(Role.OWNER), confirm_slug=" acme ")

    assert not Workspace.objects.filter(pk=workspace.pk).exists()
    assert not Membership.objects.filter(workspace_id=workspace.pk).exists()


def test_workspace_delete_needs_the_slug_typed(as_role, workspace, workspace_state):
    before = workspace_state(workspace)

    with pytest.raises(ValidationError) as error:
        services.workspace_delete(actor=as_role(Role.OWNER), confirm_slug="ACME")

    assert "confirm_slug" in error.value.message_dict
    assert workspace_state(workspace) == before


@pytest.mark.parametrize("role", [Role.ADMIN, Role.MEMBER, Role.VIEWER])
def test_workspace_delete_is_for_owners_only(as_role, workspace, workspace_state, role):
    before = workspace_state(workspace)

    with pytest.raises(PermissionDenied):
        services.workspace_delete(actor=as_role(role), confirm_slug="acme")

    assert workspace_state(workspace) == before


# invitation_create ---------------------------------------------------------------------------


def test_invitation_create_stores_a_hash_and_returns_the_token(as_role, workspace, settings):
    settings.QWEB_INVITATION_DAYS = 3
    before = timezone.now()

    invitation, token = services.invitation_create(
        actor=as_role(Role.ADMIN), email=" nina@example.com ", role=Role.VIEWER
    )

    invitation.refresh_from_db()
    assert invitation.email == "nina@example.com"
    assert invitation.role == Role.VIEWER
    assert invitation.invited_by == as_role(Role.ADMIN).user
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) >= 40
    assert before + timedelta(days=3) <= invitation.expires_at
    assert invitation.expires_at <= timezone.now() + timedelta(days=3)
    assert invitation.state == "pending"


def test_invitation_create_sends_the_link_after_commit(
    as_role, workspace, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _, token = services.invitation_create(
            actor=as_role(Role.OWNER), email="nina@example.com", base_url="https://q.example"
        )
        assert mailoutbox == []

    assert len(mailoutbox) == 1
    assert f"https://q.example/invitations/{token}/" in mailoutbox[0].body


def test_invitation_create_gives_each_invitation_a_different_token(as_role, workspace):
    _, first = services.invitation_create(actor=as_role(Role.OWNER), email="a@example.com")
    _, second = services.invitation_create(actor=as_role(Role.OWNER), email="b@example.com")

    assert first != second


def test_invitation_create_revokes_the_earlier_pending_invitation_of_the_address(
    as_role, workspace
):
    first, _ = services.invitation_create(actor=as_role(Role.OWNER), email="nina@example.com")

    second, _ = services.invitation_create(actor=as_role(Role.OWNER), email="Nina@Example.com")

    first.refresh_from_db()
    assert first.state == "revoked"
    assert list(Invitation.objects.pending()) == [second]


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_invitation_create_is_refused_to_members_and_viewers(as_role, role):
    with pytest.raises(PermissionDenied):
        services.invitation_create(actor=as_role(role), email="nina@example.com")

    assert not Invitation.objects.exists()


def test_invitation_create_refuses_an_admin_inviting_an_owner(as_role):
    with pytest.raises(PermissionDenied):
        services.invitation_create(
            actor=as_role(Role.ADMIN), email="nina@example.com", role=Role.OWNER
        )

    assert not Invitation.objects.exists()


def test_invitation_create_refuses_an_unknown_role(as_role):
    with pytest.raises(ValidationError) as error:
        services.invitation_create(actor=as_role(Role.OWNER), email="n@example.com", role="god")

    assert "role" in error.value.message_dict
    assert not Invitation.objects.exists()


@pytest.mark.parametrize("email", ["", "nobody", "a@", "@example.com", "a b@example.com"])
def test_invitation_create_refuses_an_invalid_address(as_role, email):
    with pytest.raises(ValidationError) as error:
        services.invitation_create(actor=as_role(Role.OWNER), email=email)

    assert "email" in error.value.message_dict
    assert not Invitation.objects.exists()


def test_invitation_create_refuses_an_existing_member(as_role, member):
    with pytest.raises(ValidationError) as error:
        services.invitation_create(actor=as_role(Role.OWNER), email=member.email.upper())

    assert "already a member" in error.value.message_dict["email"][0]
    assert not Invitation.objects.exists()


def test_a_refused_invitation_leaves_the_earlier_one_pending(as_role):
    first, _ = services.invitation_create(actor=as_role(Role.OWNER), email="nina@example.com")

    with pytest.raises(PermissionDenied):
        services.invitation_create(
            actor=as_role(Role.ADMIN), email="nina@example.com", role=Role.OWNER
        )

    first.refresh_from_db()
    assert first.state == "pending"


# invitation_revoke ---------------------------------------------------------------------------


def test_invitation_revoke_withdraws_a_pending_invitation(as_role, invite):
    invitation, token = invite()

    services.invitation_revoke(actor=as_role(Role.ADMIN), invitation_id=invitation.pk)

    invitation.refresh_from_db()
    assert invitation.state == "revoked"
    assert services.invitation_get_by_token(token=token) == invitation


def test_invitation_revoke_refuses_an_invitation_that_is_not_pending(as_role, invite):
    invitation, _ = invite()
    services.invitation_revoke(actor=as_role(Role.OWNER), invitation_id=invitation.pk)
    revoked_at = Invitation.objects.get().revoked_at

    with pytest.raises(ValidationError):
        services.invitation_revoke(actor=as_role(Role.OWNER), invitation_id=invitation.pk)

    assert Invitation.objects.get().revoked_at == revoked_at


def test_invitation_revoke_refuses_another_workspaces_invitation(as_role, outsider):
    foreign, _ = services.invitation_create(
        actor=outsider.memberships.get(), email="nina@example.com"
    )

    with pytest.raises(ValidationError):
        services.invitation_revoke(actor=as_role(Role.OWNER), invitation_id=foreign.pk)

    foreign.refresh_from_db()
    assert foreign.state == "pending"


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_invitation_revoke_is_refused_to_members_and_viewers(as_role, invite, role):
    invitation, _ = invite()

    with pytest.raises(PermissionDenied):
        services.invitation_revoke(actor=as_role(role), invitation_id=invitation.pk)

    invitation.refresh_from_db()
    assert invitation.state == "pending"


# invitation_get_by_token ---------------------------------------------------------------------


def test_invitation_get_by_token_finds_the_invitation_only_by_its_token(invite):
    invitation, token = invite()

    assert services.invitation_get_by_token(token=token) == invitation
    assert services.invitation_get_by_token(token=invitation.token_hash) is None
    assert services.invitation_get_by_token(token="") is None
    assert services.invitation_get_by_token(token=token + "x" * 200) is None


# invitation_accept ---------------------------------------------------------------------------


def test_invitation_accept_adds_the_user_with_the_invited_role(workspace, invite):
    nina = factories.user_create(email="Nina@Example.com")
    invitation, token = invite("nina@example.com", Role.ADMIN)

    membership = services.invitation_accept(token=token, user=nina)

    assert (membership.workspace, membership.user, membership.role) == (
        workspace,
        nina,
        Role.ADMIN,
    )
    invitation.refresh_from_db()
    assert invitation.state == "accepted"
    assert invitation.accepted_by == nina


def test_invitation_accept_refuses_another_address_and_saves_nothing(
    workspace, invite, outsider, workspace_state
):
    _, token = invite("nina@example.com")
    before = workspace_state(workspace)

    with pytest.raises(ValidationError):
        services.invitation_accept(token=token, user=outsider)

    assert workspace_state(workspace) == before


def test_invitation_accept_refuses_someone_who_is_already_a_member(
    workspace, invite, workspace_state
):
    nina = factories.user_create(email="nina@example.com")
    _, token = invite("nina@example.com")
    # Nina joined by an earlier link while this one was pending.
    factories.membership_create(workspace=workspace, user=nina, role=Role.VIEWER)
    before = workspace_state(workspace)

    with pytest.raises(ValidationError) as error:
        services.invitation_accept(token=token, user=nina)

    assert "already a member" in error.value.messages[0]
    assert workspace_state(workspace) == before


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        ({"accepted_at": timezone.now()}, "already been used"),
        ({"revoked_at": timezone.now()}, "withdrawn"),
        ({"expires_at": timezone.now() - timedelta(seconds=1)}, "expired"),
    ],
    ids=["accepted", "revoked", "expired"],
)
def test_invitation_accept_refuses_a_link_that_is_no_longer_pending(
    workspace, invite, workspace_state, spoil, message
):
    nina = factories.user_create(email="nina@example.com")
    invitation, token = invite("nina@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(**spoil)
    before = workspace_state(workspace)

    with pytest.raises(ValidationError) as error:
        services.invitation_accept(token=token, user=nina)

    assert message in error.value.messages[0]
    assert workspace_state(workspace) == before


def test_invitation_accept_refuses_an_unknown_token(workspace, workspace_state):
    user = factories.user_create()
    before = workspace_state(workspace)

    with pytest.raises(ValidationError):
        services.invitation_accept(token="unknown", user=user)

    assert workspace_state(workspace) == before


# invitation_sign_up --------------------------------------------------------------------------


def test_invitation_sign_up_creates_the_user_and_the_membership(workspace, invite):
    _, token = invite("Nina@Example.com", Role.VIEWER)

    membership = services.invitation_sign_up(token=token, name=" Nina ", password=STRONG_PASSWORD)

    user = membership.user
    assert (user.email, user.name) == ("Nina@Example.com", "Nina")
    assert user.check_password(STRONG_PASSWORD)
    assert not user.is_staff
    assert (membership.workspace, membership.role) == (workspace, Role.VIEWER)


@pytest.mark.parametrize("password", ["short", "12345678901234", "password1234", "nina@example"])
def test_invitation_sign_up_refuses_a_weak_password_and_creates_nothing(
    workspace, invite, workspace_state, password
):
    _, token = invite("nina@example.com")
    before = workspace_state(workspace)

    with pytest.raises(ValidationError) as error:
        services.invitation_sign_up(token=token, name="Nina", password=password)

    assert "password" in error.value.message_dict
    assert workspace_state(workspace) == before


def test_invitation_sign_up_refuses_an_address_that_has_an_account(
    workspace, invite, workspace_state
):
    factories.user_create(email="NINA@example.com")
    _, token = invite("nina@example.com")
    before = workspace_state(workspace)

    with pytest.raises(ValidationError) as error:
        services.invitation_sign_up(token=token, name="Nina", password=STRONG_PASSWORD)

    assert "sign in to accept" in error.value.messages[0]
    assert workspace_state(workspace) == before


def test_invitation_sign_up_refuses_a_used_link(workspace, invite, workspace_state):
    _, token = invite("nina@example.com")
    services.invitation_sign_up(token=token, name="Nina", password=STRONG_PASSWORD)
    before = workspace_state(workspace)

    with pytest.raises(ValidationError):
        services.invitation_sign_up(token=token, name="Nina 2", password=STRONG_PASSWORD)

    assert workspace_state(workspace) == before
    assert User.objects.filter(email__iexact="nina@example.com").count() == 1


# membership_change_role ----------------------------------------------------------------------


def test_membership_change_role_stores_the_new_role(as_role, member):
    target = membership_of(member, as_role(Role.OWNER).workspace)

    changed = services.membership_change_role(
        actor=as_role(Role.ADMIN), membership_id=target.pk, role="viewer"
    )

    assert changed.role == Role.VIEWER
    target.refresh_from_db()
    assert target.role == Role.VIEWER


def test_membership_change_role_to_the_same_role_changes_nothing(as_role, workspace_state):
    target = as_role(Role.MEMBER)
    before = workspace_state(target.workspace)

    services.membership_change_role(
        actor=as_role(Role.OWNER), membership_id=target.pk, role="member"
    )

    assert workspace_state(target.workspace) == before


def test_membership_change_role_refuses_an_unknown_role(as_role, workspace_state):
    target = as_role(Role.MEMBER)
    before = workspace_state(target.workspace)

    with pytest.raises(ValidationError) as error:
        services.membership_change_role(
            actor=as_role(Role.OWNER), membership_id=target.pk, role="superuser"
        )

    assert "role" in error.value.message_dict
    assert workspace_state(target.workspace) == before


def test_membership_change_role_refuses_a_membership_of_another_workspace(as_role, outsider):
    foreign = outsider.memberships.get()

    with pytest.raises(ValidationError):
        services.membership_change_role(
            actor=as_role(Role.OWNER), membership_id=foreign.pk, role="viewer"
        )

    foreign.refresh_from_db()
    assert foreign.role == Role.OWNER


@pytest.mark.parametrize(
    ("actor", "target", "new_role"),
    [
        (Role.ADMIN, Role.OWNER, Role.ADMIN),
        (Role.ADMIN, Role.MEMBER, Role.OWNER),
        (Role.MEMBER, Role.VIEWER, Role.MEMBER),
        (Role.VIEWER, Role.VIEWER, Role.OWNER),
    ],
)
def test_membership_change_role_refuses_beyond_the_actors_powers(
    as_role, workspace, workspace_state, actor, target, new_role
):
    before = workspace_state(workspace)

    with pytest.raises(PermissionDenied):
        services.membership_change_role(
            actor=as_role(actor), membership_id=as_role(target).pk, role=new_role
        )

    assert workspace_state(workspace) == before


def test_membership_change_role_keeps_the_last_owner(as_role, workspace, workspace_state):
    before = workspace_state(workspace)

    with pytest.raises(ValidationError) as error:
        services.membership_change_role(
            actor=as_role(Role.OWNER), membership_id=as_role(Role.OWNER).pk, role="admin"
        )

    assert "at least one owner" in error.value.messages[0]
    assert workspace_state(workspace) == before


def test_membership_change_role_lets_one_of_two_owners_step_down(as_role, workspace):
    factories.membership_create(workspace=workspace, role=Role.OWNER)
    own = as_role(Role.OWNER)

    services.membership_change_role(actor=own, membership_id=own.pk, role="member")

    own.refresh_from_db()
    assert own.role == Role.MEMBER


def test_membership_change_role_lets_an_owner_make_another_owner(as_role):
    services.membership_change_role(
        actor=as_role(Role.OWNER), membership_id=as_role(Role.VIEWER).pk, role="owner"
    )

    assert as_role(Role.VIEWER).role == Role.OWNER


# membership_remove ---------------------------------------------------------------------------


def test_membership_remove_lets_anyone_leave(as_role, viewer):
    services.membership_remove(actor=as_role(Role.VIEWER), membership_id=as_role(Role.VIEWER).pk)

    assert not Membership.objects.filter(user=viewer).exists()


def test_membership_remove_lets_an_admin_remove_a_member(as_role, member):
    services.membership_remove(actor=as_role(Role.ADMIN), membership_id=as_role(Role.MEMBER).pk)

    assert not Membership.objects.filter(user=member).exists()
    assert User.objects.filter(pk=member.pk).exists()


@pytest.mark.parametrize(
    ("actor", "target"),
    [(Role.ADMIN, Role.OWNER), (Role.MEMBER, Role.VIEWER), (Role.VIEWER, Role.MEMBER)],
)
def test_membership_remove_refuses_beyond_the_actors_powers(
    as_role, workspace, workspace_state, actor, target
):
    before = workspace_state(workspace)

    with pytest.raises(PermissionDenied):
        services.membership_remove(actor=as_role(actor), membership_id=as_role(target).pk)

    assert workspace_state(workspace) == before


def test_membership_remove_keeps_the_last_owner(as_role, workspace, workspace_state):
    before = workspace_state(workspace)

    with pytest.raises(ValidationError):
        services.membership_remove(actor=as_role(Role.OWNER), membership_id=as_role(Role.OWNER).pk)

    assert workspace_state(workspace) == before


def test_membership_remove_refuses_a_membership_of_another_workspace(as_role, outsider):
    foreign = outsider.memberships.get()

    with pytest.raises(ValidationError):
        services.membership_remove(actor=as_role(Role.OWNER), membership_id=foreign.pk)

    assert Membership.objects.filter(pk=foreign.pk).exists()
