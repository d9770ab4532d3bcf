from __future__ import annotations

import os
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.ops.services import TaskError
from apps.repos import services
from apps.repos.management.commands._common import acting_membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.views import error_text


class Command(BaseCommand):
    help = (
        "Clone a git URL (shallow, one branch) as a new repository; prints its id. "
        "An access token is read from QWEB_CLONE_TOKEN, never from the command line."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("url")
        parser.add_argument("--workspace", required=True, help="The workspace's address (slug).")
        parser.add_argument("--name", required=True, help="The repository's name.")
        parser.add_argument("--branch", default=None, help="Branch (default: the remote's HEAD).")
        parser.add_argument("--as", dest="as_email", help="Act as this member (default: owner).")

    def handle(self, *args: Any, **options: Any) -> None:
        membership = acting_membership(options["workspace"], options["as_email"])
        try:
            ensure_can(membership, Action.CONTRIBUTE)
            repository = services.repository_clone(
                workspace=membership.workspace,
                user=membership.user,
                name=options["name"],
                url=options["url"],
                branch=options["branch"],
                token=os.environ.get("QWEB_CLONE_TOKEN") or None,
            )
        except (TaskError, PermissionDenied) as error:
            raise CommandError(str(error)) from None
        except ValidationError as error:
            raise CommandError(error_text(error)) from None
        self.stdout.write(str(repository.pk))
