"""Invitation links, from the e-mail to the new membership, through the real views."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from django.contrib.auth import get_user
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.workspaces.models import Invitation, Membership
from apps.workspaces.roles import Role
from tests import factories

STRONG_PASSWORD = "a-long-and-unusual-passphrase"


def accept_url(token: str) -> str:
    return reverse("invitation_accept", args=[token])


def sign_up(client, token: str, *, password: str = STRONG_PASSWORD, again: str | None = None):
    return client.post(
        accept_url(token),
        {"name": "Nina New", "password": password, "password_again": again or password},
    )


# Sending -------------------------------------------------------------------------------------


def test_inviting_sends_an_email_with_a_working_link(
    client, owner, workspace, mailoutbox, django_capture_on_commit_callbacks
):
    client.force_login(owner)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("workspaces:invite", args=[workspace.slug]),
            {"email": "nina@example.com", "role": Role.ADMIN},
        )

    assert response.status_code == 200
    assert len(mailoutbox) == 1
    email = mailoutbox[0]
    assert email.to == ["nina@example.com"]
    assert "Acme" in email.subject
    link = re.search(r"http://testserver/invitations/[\w-]+/", email.body).group(0)
    assert link == response.context["new_link"]
    client.logout()
    assert client.get(link).status_code == 200


def test_the_emailed_link_uses_the_configured_site_address(
    client, owner, workspace, mailoutbox, django_capture_on_commit_callbacks, settings
):
    settings.SITE_URL = "https://qweb.example.com"
    client.force_login(owner)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("workspaces:invite", args=[workspace.slug]),
            {"email": "nina@example.com", "role": Role.MEMBER},
        )

    assert response.context["new_link"].startswith("https://qweb.example.com/invitations/")
    assert response.context["new_link"] in mailoutbox[0].body


def test_only_a_sha256_hash_of_the_token_is_stored(
    client, owner, workspace, mailoutbox, django_capture_on_commit_callbacks
):
    client.force_login(owner)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("workspaces:invite", args=[workspace.slug]),
            {"email": "nina@example.com", "role": Role.MEMBER},
        )

    token = re.search(r"/invitations/([\w-]+)/", mailoutbox[0].body).group(1)
    invitation = Invitation.objects.get()
    assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
    stored = Invitation.objects.filter(pk=invitation.pk).values().get()
    assert not any(token in str(value) for value in stored.values())


def test_inviting_someone_who_is_already_a_member_is_refused(
    client, owner, member, workspace, mailoutbox, django_capture_on_commit_callbacks
):
    client.force_login(owner)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("workspaces:invite", args=[workspace.slug]),
            {"email": member.email.upper(), "role": Role.MEMBER},
        )

    assert response.status_code == 400
    assert "already a member" in str(response.context["invite_form"].errors["email"])
    assert not Invitation.objects.exists()
    assert mailoutbox == []


@pytest.mark.parametrize(
    "address", ["not-an-address", "two@@example.com", "", "a@b", "name@example.com\nBcc: x@y.z"]
)
def test_an_invalid_email_address_is_refused_and_nothing_is_saved(
    client, owner, workspace, mailoutbox, django_capture_on_commit_callbacks, address
):
    client.force_login(owner)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("workspaces:invite", args=[workspace.slug]),
            {"email": address, "role": Role.MEMBER},
        )

    assert response.status_code == 400
    assert response.context["invite_form"].errors["email"]
    assert not Invitation.objects.exists()
    assert mailoutbox == []


def test_inviting_the_same_address_again_revokes_the_older_link(client, owner, workspace, invite):
    first, first_token = invite("nina@example.com")
    client.force_login(owner)

    client.post(
        reverse("workspaces:invite", args=[workspace.slug]),
        {"email": "NINA@example.com", "role": Role.VIEWER},
    )
    client.logout()

    first.refresh_from_db()
    assert first.state == "revoked"
    assert Invitation.objects.pending().get().role == Role.VIEWER
    response = client.get(accept_url(first_token))
    assert response.status_code == 400
    assert "withdrawn" in response.context["error"]


def test_the_members_page_of_a_manager_lists_pending_invitations_only(
    client, owner, workspace, invite
):
    invite("pending@example.com")
    revoked, _ = invite("revoked@example.com")
    Invitation.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    client.force_login(owner)

    response = client.get(reverse("workspaces:members", args=[workspace.slug]))

    assert [i.email for i in response.context["invitations"]] == ["pending@example.com"]


# Accepting by signing up ---------------------------------------------------------------------


def test_a_new_person_accepts_by_signing_up_and_is_signed_in(client, workspace, invite):
    _, token = invite("nina@example.com", Role.ADMIN)

    page = client.get(accept_url(token))
    response = sign_up(client, token)

    assert page.status_code == 200
    assert page.context["signup_form"] is not None
    assert response.status_code == 302
    assert response.url == reverse("workspaces:detail", args=[workspace.slug])
    user = User.objects.get(email="nina@example.com")
    assert user.name == "Nina New"
    assert user.check_password(STRONG_PASSWORD)
    assert Membership.objects.get(user=user).role == Role.ADMIN
    assert get_user(client).pk == user.pk
    invitation = Invitation.objects.get()
    assert invitation.state == "accepted"
    assert invitation.accepted_by == user
    assert client.get(response.url).status_code == 200


@pytest.mark.parametrize(
    "weak_password",
    ["short1", "1234567890123", "password123", "nina@example.com", "nina.example"],
)
def test_signing_up_with_a_weak_password_is_refused_and_nothing_is_created(
    client, workspace, invite, weak_password
):
    _, token = invite("nina@example.com")

    response = sign_up(client, token, password=weak_password)

    assert response.status_code == 400
    assert response.context["signup_form"].errors["password"]
    assert not User.objects.filter(email="nina@example.com").exists()
    assert Invitation.objects.get().state == "pending"
    assert not get_user(client).is_authenticated


def test_signing_up_with_two_different_passwords_is_refused(client, workspace, invite):
    _, token = invite("nina@example.com")

    response = sign_up(client, token, again="another-long-passphrase")

    assert response.status_code == 400
    assert response.context["signup_form"].errors["password_again"]
    assert not User.objects.filter(email="nina@example.com").exists()


def test_someone_with_an_account_is_asked_to_sign_in_instead_of_signing_up(
    client, workspace, invite
):
    factories.user_create(email="Nina@Example.com")
    _, token = invite("nina@example.com")

    page = client.get(accept_url(token))
    response = sign_up(client, token)

    assert page.context["has_account"] is True
    assert "Sign in to accept" in page.content.decode()
    assert response.status_code == 200
    assert User.objects.filter(email__iexact="nina@example.com").count() == 1
    assert not Membership.objects.filter(user__email__iexact="nina@example.com").exists()
    assert Invitation.objects.get().state == "pending"


# Accepting with an existing account ----------------------------------------------------------


def test_a_signed_in_user_with_the_invited_address_can_accept(client, workspace, invite):
    nina = factories.user_create(email="Nina@Example.com")
    _, token = invite("nina@example.com", Role.VIEWER)
    client.force_login(nina)

    page = client.get(accept_url(token))
    response = client.post(accept_url(token))

    assert page.context["email_matches"] is True
    assert response.status_code == 302
    assert response.url == reverse("workspaces:detail", args=[workspace.slug])
    assert Membership.objects.get(user=nina, workspace=workspace).role == Role.VIEWER
    assert Invitation.objects.get().accepted_by == nina


def test_a_signed_in_user_with_another_address_cannot_accept(client, outsider, workspace, invite):
    _, token = invite("nina@example.com")
    client.force_login(outsider)

    page = client.get(accept_url(token))
    response = client.post(accept_url(token))

    assert page.context["email_matches"] is False
    assert response.status_code == 400
    assert "This invitation is for nina@example.com" in response.context["error"]
    assert not Membership.objects.filter(user=outsider, workspace=workspace).exists()
    assert Invitation.objects.get().state == "pending"


# Links that no longer work -------------------------------------------------------------------


def test_an_expired_link_is_refused(client, workspace, invite):
    invitation, token = invite("nina@example.com")
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )

    response = sign_up(client, token)

    assert response.status_code == 400
    assert "expired" in response.context["error"]
    assert not User.objects.filter(email="nina@example.com").exists()


def test_an_accepted_link_cannot_be_used_again(client, workspace, invite):
    _, token = invite("nina@example.com")
    sign_up(client, token)
    client.logout()

    again = client.get(accept_url(token))
    reused = sign_up(client, token)

    assert again.status_code == 400
    assert "already been used" in again.context["error"]
    assert reused.status_code == 400
    assert User.objects.filter(email="nina@example.com").count() == 1
    assert Membership.objects.filter(workspace=workspace).count() == 2


def test_an_accepted_link_cannot_be_used_again_by_the_signed_in_invitee(client, workspace, invite):
    _, token = invite("nina@example.com")
    sign_up(client, token)

    response = client.post(accept_url(token))

    assert response.status_code == 400
    assert "already been used" in response.context["error"]
    assert Membership.objects.filter(workspace=workspace).count() == 2


def test_a_revoked_link_is_refused(client, owner, workspace, invite):
    invitation, token = invite("nina@example.com")
    client.force_login(owner)
    client.post(reverse("workspaces:invitation_revoke", args=[workspace.slug, invitation.pk]))
    client.logout()

    response = sign_up(client, token)

    assert response.status_code == 400
    assert "withdrawn" in response.context["error"]
    assert not User.objects.filter(email="nina@example.com").exists()


@pytest.mark.parametrize("token", ["nonsense", "x" * 200, "a" * 43])
def test_an_unknown_token_is_404(client, db, token):
    response = client.get(accept_url(token))

    assert response.status_code == 404
    assert "not valid" in response.content.decode()


def test_posting_to_an_unknown_token_is_404_and_creates_nothing(client, db):
    response = sign_up(client, "a" * 43)

    assert response.status_code == 404
    assert not User.objects.exists()
