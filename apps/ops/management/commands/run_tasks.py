from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.ops.runner import TaskRunner, registered_kinds


class Command(BaseCommand):
    help = "Run background tasks (imports, clones, indexing) until SIGTERM or SIGINT."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--kinds", default="", help="Comma-separated task kinds to run (default: all)."
        )
        parser.add_argument("--once", action="store_true", help="Run queued tasks, then exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        kinds = [kind for kind in options["kinds"].split(",") if kind] or None
        unknown = sorted(set(kinds or []) - set(registered_kinds()))
        if unknown:
            raise CommandError(
                f"Unknown task kinds: {', '.join(unknown)}. Known: {', '.join(registered_kinds())}."
            )
        runner = TaskRunner(kinds=kinds)
        if options["once"]:
            runner.remove_leftovers()
            while runner.run_once():
                pass
            return

        def stop(signum: int, frame: Any) -> None:
            # Stop claiming; the task in hand finishes, then the loop exits.
            self.stderr.write(
                f"Received signal {signum}: finishing the current task, then exiting."
            )
            runner.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Running tasks as {runner.worker}")
        runner.run_forever()
