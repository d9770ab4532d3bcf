from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.repos.context import ContextError, context_build
from apps.repos.models import Repository


class Command(BaseCommand):
    help = (
        "Rank a repository's files for a question and pack them into a token budget, as chat "
        "does: path, score and why for each file, and the packed token count."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--repo", type=int, required=True, help="The repository's id.")
        parser.add_argument("--query", required=True, help="The question.")
        parser.add_argument("--budget", type=int, default=32_000, help="Token budget.")
        parser.add_argument("--commit", default=None, help="Commit sha (default: the head).")
        parser.add_argument("--pin", action="append", default=[], help="A file to include whole.")
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["budget"] < 1:
            raise CommandError("--budget must be a positive number of tokens.")
        repository = Repository.objects.filter(pk=options["repo"]).first()
        if repository is None:
            raise CommandError(f"No repository with id {options['repo']}.")
        try:
            context = context_build(
                repository=repository,
                query=options["query"],
                budget_tokens=options["budget"],
                sha=options["commit"],
                pinned=options["pin"],
            )
        except ContextError as error:
            raise CommandError(str(error)) from None
        if options["json"]:
            self.stdout.write(json.dumps(context.as_dict(), indent=2))
            return
        self.stdout.write(
            f"{repository.name} @ {context.commit[:12]} — {context.packed_tokens} of "
            f"{context.budget} tokens ({context.tokenizer})"
        )
        for item in context.files:
            self.stdout.write(
                f"{item.score:6.3f}  {item.included:6}  {item.tokens:6}  {item.path}  "
                f"[{'; '.join(item.reasons)}]"
            )
