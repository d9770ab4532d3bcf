from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.refactors.services import edits_preview
from apps.repos.models import Repository
from qweb.views import error_text

MAX_ANSWER_BYTES = 2_000_000


class Command(BaseCommand):
    help = (
        "Apply a saved model answer's SEARCH/REPLACE edits to a commit, as a refactor proposal "
        "does, without writing anything: per-file results (applied how, with what confidence, "
        "or refused and why), every path the commit would change and git's unified diff."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("answer_file", help="The model's answer (a file, or - for stdin).")
        parser.add_argument("--repo", type=int, required=True, help="The repository's id.")
        parser.add_argument("--base", required=True, help="The commit (or branch) to edit.")
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        repository = Repository.objects.filter(pk=options["repo"]).first()
        if repository is None:
            raise CommandError(f"No repository with id {options['repo']}.")
        source = options["answer_file"]
        try:
            data = (
                sys.stdin.buffer.read(MAX_ANSWER_BYTES + 1)
                if source == "-"
                else Path(source).read_bytes()
            )
        except OSError as error:
            raise CommandError(f"Cannot read {source}: {error.strerror}.") from None
        if len(data) > MAX_ANSWER_BYTES:
            raise CommandError(f"The answer is larger than {MAX_ANSWER_BYTES:,} bytes.")
        try:
            answer = data.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("The answer is not UTF-8 text.") from None
        try:
            preview = edits_preview(repository=repository, base=options["base"], answer=answer)
        except ValidationError as error:
            raise CommandError(error_text(error)) from None
        if options["json"]:
            self.stdout.write(json.dumps(preview, indent=2))
            return
        rate = preview["success_rate"]
        self.stdout.write(
            f"{preview['applied']} applied, {preview['refused']} refused"
            + (f" ({rate:.0%})" if rate is not None else "")
            + f" on {preview['base'][:12]}"
        )
        for item in preview["files"]:
            for edit in item["edits"]:
                if edit["status"] == "applied":
                    detail = f"{edit['how']}"
                    if edit["how"] == "fuzzy":
                        detail += f", confidence {edit['confidence']:.2f}"
                    where = (
                        f" lines {edit['start_line']}-{edit['end_line']}"
                        if edit["start_line"]
                        else ""
                    )
                    self.stdout.write(f"  applied  {item['path']}{where} ({detail})")
                else:
                    self.stdout.write(f"  refused  {item['path'] or '(no file)'}: {edit['reason']}")
        if preview["changes"]:
            # What the proposal's commit would change, deletions and both ends of a rename
            # included: the per-edit lines above name only the path each edit was given.
            self.stdout.write("")
            self.stdout.write("The commit would change:")
            for change in preview["changes"]:
                self.stdout.write(f"  {change['status']:<8} {change['path']}")
        if preview["diff"]:
            self.stdout.write("")
            self.stdout.write(preview["diff"].rstrip("\n"))
