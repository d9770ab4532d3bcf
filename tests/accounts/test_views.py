"""Signing in and out, changing the password, editing the profile."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.accounts.models import User
from tests import factories
from tests.factories import PASSWORD

NEW_PASSWORD = "another-long-passphrase"


@pytest.fixture
def ann(db):
    return factories.user_create(email="ann@example.com", name="Ann")


# Signing in ----------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["ann@example.com", "Ann@Example.COM", "  ANN@EXAMPLE.COM"])
def test_signing_in_ignores_the_case_of_the_email_address(client, ann, typed):
    response = client.post(reverse("accounts:login"), {"username": typed, "password": PASSWORD})

    assert response.status_code == 302
    assert response.url == reverse("workspaces:home")
    assert get_user(client) == ann


def test_signing_in_with_a_wrong_password_is_refused(client, ann):
    response = client.post(
        reverse("accounts:login"), {"username": "ann@example.com", "password": "wrong-password"}
    )

    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert not get_user(client).is_authenticated


def test_signing_in_as_an_inactive_user_is_refused(client, ann):
    User.objects.filter(pk=ann.pk).update(is_active=False)

    client.post(reverse("accounts:login"), {"username": "ann@example.com", "password": PASSWORD})

    assert not get_user(client).is_authenticated


def test_signing_in_follows_a_safe_next_url_only(client, ann):
    data = {"username": "ann@example.com", "password": PASSWORD}

    safe = client.post(f"{reverse('accounts:login')}?next=/w/acme/", data)
    client.logout()
    unsafe = client.post(f"{reverse('accounts:login')}?next=https://evil.example/", data)

    assert safe.url == "/w/acme/"
    assert unsafe.url == reverse("workspaces:home")


def test_the_sign_in_page_sends_signed_in_users_home(client, ann):
    client.force_login(ann)

    response = client.get(reverse("accounts:login"))

    assert response.status_code == 302
    assert response.url == reverse("workspaces:home")


# Signing out ---------------------------------------------------------------------------------


def test_signing_out_needs_a_post(client, ann):
    client.force_login(ann)

    response = client.get(reverse("accounts:logout"))

    assert response.status_code == 405
    assert get_user(client) == ann


def test_signing_out_with_a_post_ends_the_session(client, ann):
    client.force_login(ann)

    response = client.post(reverse("accounts:logout"))

    assert response.status_code == 302
    assert response.url == reverse("accounts:login")
    assert not get_user(client).is_authenticated


# Password ------------------------------------------------------------------------------------


def test_a_user_can_change_their_password_and_stays_signed_in(client, ann):
    client.force_login(ann)

    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert response.url == reverse("accounts:profile")
    ann.refresh_from_db()
    assert ann.check_password(NEW_PASSWORD)
    assert get_user(client) == ann


def test_changing_the_password_needs_the_old_one(client, ann):
    client.force_login(ann)

    response = client.post(
        reverse("accounts:password_change"),
        {
            "old_password": "not-my-password",
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )

    assert response.status_code == 200
    assert response.context["form"].errors["old_password"]
    ann.refresh_from_db()
    assert ann.check_password(PASSWORD)


@pytest.mark.parametrize("weak", ["short", "1234567890123", "password1234"])
def test_changing_to_a_weak_password_is_refused(client, ann, weak):
    client.force_login(ann)

    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": weak, "new_password2": weak},
    )

    assert response.context["form"].errors["new_password2"]
    ann.refresh_from_db()
    assert ann.check_password(PASSWORD)


def test_the_password_page_needs_a_signed_in_user(client, db):
    response = client.get(reverse("accounts:password_change"))

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


# Profile -------------------------------------------------------------------------------------


def test_a_user_can_rename_themselves(client, ann):
    client.force_login(ann)

    page = client.get(reverse("accounts:profile"))
    response = client.post(reverse("accounts:profile"), {"name": "Ann Smith"})

    assert page.status_code == 200
    assert response.status_code == 302
    ann.refresh_from_db()
    assert ann.name == "Ann Smith"
    assert ann.display_name == "Ann Smith"


def test_the_profile_form_cannot_change_the_email_or_staff_flag(client, ann):
    client.force_login(ann)

    client.post(
        reverse("accounts:profile"),
        {"name": "Ann", "email": "boss@example.com", "is_staff": "on", "is_superuser": "on"},
    )

    ann.refresh_from_db()
    assert (ann.email, ann.is_staff, ann.is_superuser) == ("ann@example.com", False, False)


def test_the_profile_needs_a_signed_in_user(client, db):
    response = client.post(reverse("accounts:profile"), {"name": "Nobody"})

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


# The user model ------------------------------------------------------------------------------


def test_two_accounts_cannot_share_an_address_in_different_case(ann):
    with pytest.raises(ValidationError):
        User.objects.create_user("ANN@example.com", PASSWORD)

    assert User.objects.count() == 1


def test_a_user_without_a_name_is_shown_by_email(db):
    user = factories.user_create(email="bob.smith@example.com")
    User.objects.filter(pk=user.pk).update(name="")
    user.refresh_from_db()

    assert (user.display_name, user.initials) == ("bob.smith@example.com", "BS")
