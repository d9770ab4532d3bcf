"""Every page with a form shows it clean on first load: errors appear only after a post.

A form bound on GET (to an empty ``request.POST``) validates nothing and shows "This field
is required" under every required field before the user typed anything. The repository
pages have their own tests in tests/repos/test_views.py.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.workspaces import services
from tests.workspaces.helpers import membership_of

ERROR_MARKERS = (
    b"This field is required",
    b"field-error",
    b"form-error",
    b"errorlist",
    b'aria-invalid="true"',
)

SIGNED_IN_PAGES = [
    ("workspaces:create", []),
    ("workspaces:settings", ["acme"]),
    ("workspaces:members", ["acme"]),
    ("accounts:profile", []),
    ("accounts:password_change", []),
    ("chat:index", ["acme"]),
    ("refactors:index", ["acme"]),
]


def assert_no_errors(response) -> None:
    assert response.status_code == 200
    shown = [marker for marker in ERROR_MARKERS if marker in response.content]
    assert not shown, f"errors on first load: {shown}"


@pytest.mark.parametrize(
    ("name", "args"), SIGNED_IN_PAGES, ids=[name for name, _ in SIGNED_IN_PAGES]
)
def test_a_form_page_shows_no_errors_before_a_post(client, owner, name, args):
    client.force_login(owner)

    assert_no_errors(client.get(reverse(name, args=args)))


def test_the_sign_in_page_shows_no_errors_before_a_post(client, db):
    assert_no_errors(client.get(reverse("accounts:login")))


def test_the_invitation_sign_up_form_shows_no_errors_before_a_post(client, owner, workspace):
    _, token = services.invitation_create(
        actor=membership_of(owner, workspace), email="new@example.com", role="member"
    )

    assert_no_errors(client.get(reverse("invitation_accept", args=[token])))
