from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.ops.services import TaskError
from apps.repos import services
from apps.repos.indexing import index_commit
from apps.repos.management.commands._common import acting_membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.views import error_text


class Command(BaseCommand):
    help = (
        "Import an archive (.zip, .tar, .tar.gz, .tgz, .tar.xz) as a new repository; prints its id."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("path", help="The archive to import.")
        parser.add_argument("--workspace", required=True, help="The workspace's address (slug).")
        parser.add_argument("--name", required=True, help="The repository's name.")
        parser.add_argument("--as", dest="as_email", help="Act as this member (default: owner).")
        parser.add_argument(
            "--no-index",
            action="store_true",
            help="Leave indexing to the background workers instead of doing it now.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        membership = acting_membership(options["workspace"], options["as_email"])
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        try:
            ensure_can(membership, Action.CONTRIBUTE)
            services.archive_check_name(path.name)
            repository = services.repository_import_archive(
                workspace=membership.workspace,
                user=membership.user,
                name=options["name"],
                archive_path=path,
                filename=path.name,
            )
        except (TaskError, PermissionDenied) as error:
            raise CommandError(str(error)) from None
        except ValidationError as error:
            raise CommandError(error_text(error)) from None
        if not options["no_index"]:
            indexed = index_commit(repository=repository, sha=repository.head_sha)
            self.stderr.write(
                f"Indexed {indexed.files_total} files ({indexed.files_parsed} parsed) "
                f"in {indexed.seconds:.1f} s."
            )
        self.stdout.write(str(repository.pk))
