from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.services import admin_ensure
from qweb.env import Env


class Command(BaseCommand):
    help = (
        "Create the first administrator if there is none. Reads QWEB_ADMIN_EMAIL and "
        "QWEB_ADMIN_PASSWORD (or QWEB_ADMIN_PASSWORD_FILE); without a password one is "
        "generated and printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        env = Env()
        try:
            result = admin_ensure(
                email=env.str("QWEB_ADMIN_EMAIL"), password=env.secret("QWEB_ADMIN_PASSWORD")
            )
        except ValidationError as error:
            raise CommandError(
                "Cannot create the first admin: " + " ".join(error.messages)
            ) from None
        if result is None:
            self.stdout.write("An administrator exists already.")
            return
        user, generated = result
        self.stdout.write(self.style.SUCCESS(f"Created the first administrator: {user.email}"))
        if generated:
            banner = "=" * 64
            self.stdout.write(
                f"{banner}\n  Sign in as {user.email} with password: {generated}\n"
                f"  It is shown only now. Change it under Profile → Password.\n{banner}"
            )
