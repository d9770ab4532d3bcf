"""Writes for accounts."""

from __future__ import annotations

import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import User


def admin_ensure(*, email: str | None, password: str | None) -> tuple[User, str | None] | None:
    """Create the deployment's first administrator unless one exists.

    Returns the new user and the generated password (None when the password was given), or
    None when an administrator exists already.
    """
    with transaction.atomic():
        if User.objects.filter(is_staff=True, is_active=True).exists():
            return None
        generated = None
        if not password:
            generated = password = secrets.token_urlsafe(15)
        user = User(email=(email or "admin@localhost").strip(), name="Administrator")
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise ValidationError({"password": error.error_list}) from None
        user = User.objects.create_superuser(user.email, password, name=user.name)
    return user, generated
