"""The Content-Security-Policy: every kind of page sends it, and no template needs loosening it.

Model output reaches pages through innerHTML; the policy is what keeps a rendering slip from
running script. tests/e2e/test_csp.py proves Chromium enforces it, and the browser tests
fail on any violation a page reports (tests/e2e/conftest.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import include, path, reverse

from tests.repos.conftest import shop_repository

ROOT = Path(__file__).resolve().parents[1]

EXPECTED_POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def _boom(request):
    raise RuntimeError("a bug")


# This module doubles as the URLconf of the server-error test: qweb's URLs plus one that fails.
urlpatterns = [path("boom/", _boom), path("", include("qweb.urls"))]


def policy_of(response) -> dict[str, list[str]]:
    header = response.headers.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy on {response.status_code} {response}"
    directives = [part.split() for part in header.split(";") if part.strip()]
    policy = {name: values for name, *values in directives}
    assert len(policy) == len(directives), f"a directive is repeated: {header}"
    return policy


@pytest.fixture(autouse=True)
def page_settings(settings, tmp_path, tiny_model_dir):
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    settings.QWEB_MODEL_DIR = tiny_model_dir
    settings.QWEB_CONTEXT_TOKENS = 0
    settings.QWEB_CONTEXT_WINDOW = 0
    return settings


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def shop(workspace, owner, tmp_path):
    return shop_repository(workspace=workspace, user=owner, tmp_path=tmp_path)


@pytest.fixture
def membership(workspace, owner):
    from apps.workspaces.models import Membership

    return Membership.objects.get(workspace=workspace, user=owner)


def test_the_sign_in_page_carries_the_policy(client):
    response = client.get(reverse("accounts:login"))

    assert response.status_code == 200
    assert policy_of(response) == EXPECTED_POLICY


def test_the_workspace_page_carries_the_policy(signed_in, workspace):
    response = signed_in.get(reverse("workspaces:detail", args=[workspace.slug]))

    assert response.status_code == 200
    assert policy_of(response) == EXPECTED_POLICY


def test_the_repository_tree_and_blob_pages_carry_the_policy(signed_in, workspace, shop):
    tree = signed_in.get(reverse("repos:tree", args=[workspace.slug, shop.slug]))
    blob = signed_in.get(
        reverse("repos:blob", args=[workspace.slug, shop.slug, shop.head_sha, "manage.py"])
    )

    assert (tree.status_code, blob.status_code) == (200, 200)
    assert policy_of(tree) == EXPECTED_POLICY
    assert policy_of(blob) == EXPECTED_POLICY


def test_the_chat_page_carries_the_policy(signed_in, workspace, shop, membership):
    from apps.chat.services import conversation_create

    conversation = conversation_create(membership=membership, repository=shop)

    response = signed_in.get(reverse("chat:detail", args=[workspace.slug, conversation.pk]))

    assert response.status_code == 200
    assert policy_of(response) == EXPECTED_POLICY


def test_the_refactor_page_carries_the_policy(signed_in, workspace, shop, membership):
    from apps.refactors.services import refactor_create

    session = refactor_create(
        membership=membership, repository=shop, instruction="Rename total_with_tax"
    )

    response = signed_in.get(reverse("refactors:detail", args=[workspace.slug, session.pk]))

    assert response.status_code == 200
    assert policy_of(response) == EXPECTED_POLICY


def test_the_not_allowed_page_carries_the_policy(client, workspace, viewer):
    client.force_login(viewer)

    response = client.post(
        reverse("workspaces:invite", args=[workspace.slug]),
        {"email": "new@example.com", "role": "member"},
    )

    assert response.status_code == 403
    assert "You can't do that here" in response.text
    assert policy_of(response) == EXPECTED_POLICY


def test_the_expired_form_page_carries_the_policy(db):
    response = Client(enforce_csrf_checks=True).post(
        reverse("accounts:login"), {"username": "a@example.com", "password": "x"}
    )

    assert response.status_code == 403
    assert "This form has expired" in response.text
    assert policy_of(response) == EXPECTED_POLICY


def test_the_not_found_page_carries_the_policy(signed_in):
    response = signed_in.get("/no/such/page/")

    assert response.status_code == 404
    assert "Nothing here" in response.text
    assert policy_of(response) == EXPECTED_POLICY


@pytest.mark.urls("tests.test_csp")
def test_the_server_error_page_carries_the_policy_and_needs_no_inline_style(db):
    client = Client(raise_request_exception=False)

    response = client.get("/boom/")

    assert response.status_code == 500
    assert "Something went wrong on our side" in response.text
    assert "<style" not in response.text
    assert policy_of(response) == EXPECTED_POLICY


def test_the_policy_is_the_setting_that_documents_it():
    directives = settings.CONTENT_SECURITY_POLICY["DIRECTIVES"]

    assert directives == EXPECTED_POLICY
    assert not any("unsafe" in value for values in directives.values() for value in values)


# --- Templates and scripts: nothing the policy refuses ---------------------------------------

TEMPLATES = sorted(
    path
    for folder in (ROOT / "templates", *ROOT.glob("apps/*/templates"))
    for path in folder.rglob("*.html")
)
SCRIPTS = sorted((ROOT / "static" / "js").glob("*.js"))
_DJANGO_COMMENT = re.compile(r"\{#.*?#\}|\{%\s*comment\s*%\}.*?\{%\s*endcomment\s*%\}", re.S)
_TAG = re.compile(r"<[a-zA-Z][^<>]*>", re.S)
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>", re.I)
_HANDLER_OR_STYLE = re.compile(r"\s(on[a-z]+|style)\s*=", re.I)


def refused_markup(text: str) -> list[str]:
    """What in this HTML the policy would refuse: inline script, handlers, styles, js: URLs."""
    text = _DJANGO_COMMENT.sub("", text)
    found = [match.group(0) for match in _INLINE_SCRIPT.finditer(text)]
    found += re.findall(r"<style\b[^>]*>", text, re.I)
    found += re.findall(r"javascript:[^\"'\s>]*", text, re.I)
    for tag in _TAG.findall(text):
        found += [f"{attr}= in {tag[:80]}" for attr in _HANDLER_OR_STYLE.findall(tag)]
    return found


def test_the_markup_check_finds_what_the_policy_refuses():
    assert len(refused_markup('<script>x()</script><a href="javascript:x()">')) == 2
    assert refused_markup('<select onchange="this.form.submit()">')
    assert refused_markup('<span class="seg" style="width: 5%">')
    assert refused_markup("<style>body{}</style>")
    assert refused_markup('<script src="/static/js/app.js" defer></script>') == []
    assert refused_markup("{# <script>x()</script> #}<p data-confirm='Sure?'>") == []


def test_there_are_templates_to_check():
    assert ROOT / "templates" / "base.html" in TEMPLATES
    assert len(TEMPLATES) > 30


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_template_has_inline_script_handlers_styles_or_script_urls(template):
    assert refused_markup(template.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_no_script_writes_markup_with_handlers_styles_or_script_urls(script):
    # HTML that qweb's scripts build as strings goes through innerHTML under the same policy.
    assert refused_markup(script.read_text(encoding="utf-8")) == []
