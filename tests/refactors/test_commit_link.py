"""An applied commit links back to its review page with an absolute address."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.refactors import services
from apps.refactors.models import Apply
from qweb.lib.gitstore import GitStore
from tests.refactors.test_flow import RENAME

pytestmark = pytest.mark.django_db


def _applied_message(project, record) -> str:
    return GitStore(project.store_path).log(record.result_commit, limit=1)[0].message


def _accept_all(changeset, membership):
    services.decisions_all(membership=membership, changeset=changeset, verdict="accept")


@pytest.mark.parametrize(
    ("site_url", "origin", "absent"),
    [
        # No site configured: the address the request came to.
        ("", "http://qweb.example.test:8443", None),
        # A configured site wins over the request's host.
        ("https://code.example.org", "https://code.example.org", "qweb.example.test"),
    ],
    ids=["from-the-request", "configured-site"],
)
def test_the_commit_links_to_the_session_with_an_absolute_address(
    client, settings, propose, admin, membership_of, project, site_url, origin, absent
):
    settings.SITE_URL = site_url
    settings.ALLOWED_HOSTS = ["qweb.example.test"]
    changeset = propose(RENAME)
    _accept_all(changeset, membership_of(admin))
    client.force_login(admin)

    client.post(
        reverse("refactors:apply", args=["acme", changeset.session_id, changeset.pk]),
        {"target": "branch"},
        HTTP_HOST="qweb.example.test:8443",
    )

    record = Apply.objects.get(state=Apply.State.APPLIED)
    page = reverse("refactors:detail", args=["acme", changeset.session_id])
    message = _applied_message(project, record)
    assert re.search(rf"^{re.escape(origin + page)}$", message, re.MULTILINE)
    if absent:
        assert absent not in message


def test_a_service_caller_without_a_request_gets_the_configured_site(
    settings, propose, owner, membership_of, project
):
    settings.SITE_URL = "https://code.example.org"
    changeset = propose(RENAME)
    _accept_all(changeset, membership_of(owner))

    record = services.changeset_apply(membership=membership_of(owner), changeset=changeset)

    page = reverse("refactors:detail", args=["acme", changeset.session_id])
    assert f"https://code.example.org{page}" in _applied_message(project, record)
