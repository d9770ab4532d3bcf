"""The ``ensure_admin`` command that gives a fresh deployment its first administrator."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from apps.accounts.models import User


@pytest.fixture(autouse=True)
def no_admin_variables(monkeypatch):
    for name in ("QWEB_ADMIN_EMAIL", "QWEB_ADMIN_PASSWORD", "QWEB_ADMIN_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)


def ensure_admin() -> str:
    out = StringIO()
    call_command("ensure_admin", stdout=out)
    return out.getvalue()


def test_it_creates_one_admin_with_a_generated_password_printed_once(db):
    output = ensure_admin()

    admin = User.objects.get()
    assert (admin.email, admin.is_staff, admin.is_superuser) == ("admin@localhost", True, True)
    password = re.search(r"with password: (\S+)", output).group(1)
    assert len(password) >= 16
    assert authenticate(username="admin@localhost", password=password) == admin
    assert output.count(password) == 1


def test_a_second_run_does_nothing(db):
    first = ensure_admin()

    second = ensure_admin()

    assert User.objects.count() == 1
    assert "exists already" in second
    assert "password" not in second
    assert re.search(r"with password: (\S+)", first).group(1) not in second


def test_it_honours_the_configured_email_and_password(db, monkeypatch):
    monkeypatch.setenv("QWEB_ADMIN_EMAIL", "ops@example.com")
    monkeypatch.setenv("QWEB_ADMIN_PASSWORD", "a-long-and-unusual-passphrase")

    output = ensure_admin()

    admin = User.objects.get()
    assert admin.email == "ops@example.com"
    assert admin.check_password("a-long-and-unusual-passphrase")
    assert "Created the first administrator: ops@example.com" in output
    assert "a-long-and-unusual-passphrase" not in output


def test_it_reads_the_password_from_a_file(db, monkeypatch, tmp_path):
    secret = tmp_path / "admin_password"
    secret.write_text("a-long-and-unusual-passphrase\n")
    monkeypatch.setenv("QWEB_ADMIN_PASSWORD_FILE", str(secret))

    ensure_admin()

    assert User.objects.get().check_password("a-long-and-unusual-passphrase")


@pytest.mark.parametrize("weak", ["short", "12345678901234", "password1234", "adminlocalhost"])
def test_a_weak_configured_password_fails_clearly_and_creates_nothing(db, monkeypatch, weak):
    monkeypatch.setenv("QWEB_ADMIN_PASSWORD", weak)

    with pytest.raises(CommandError) as error:
        ensure_admin()

    assert str(error.value).startswith("Cannot create the first admin: ")
    assert "password" in str(error.value).lower()
    assert not User.objects.exists()


def test_an_invalid_configured_email_fails_clearly_and_creates_nothing(db, monkeypatch):
    monkeypatch.setenv("QWEB_ADMIN_EMAIL", "not an address")

    with pytest.raises(CommandError, match="Cannot create the first admin"):
        ensure_admin()

    assert not User.objects.exists()


def test_it_does_nothing_when_an_admin_exists_even_with_other_settings(db, monkeypatch):
    User.objects.create_superuser("root@example.com", "a-long-and-unusual-passphrase")
    monkeypatch.setenv("QWEB_ADMIN_EMAIL", "ops@example.com")

    output = ensure_admin()

    assert list(User.objects.values_list("email", flat=True)) == ["root@example.com"]
    assert "exists already" in output
