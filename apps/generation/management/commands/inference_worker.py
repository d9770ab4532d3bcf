from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.generation.backends import BackendError, backend_from_settings
from apps.generation.worker import InferenceWorker


class Command(BaseCommand):
    help = (
        "Load the model once and serve generation jobs from the database until SIGTERM "
        "(then finish or hand back running jobs and exit)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--max-jobs", type=int, default=None, help="Jobs served at once.")
        parser.add_argument("--worker-id", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            backend = backend_from_settings()
        except BackendError as error:
            raise CommandError(f"Cannot start the worker: {error}") from None
        worker = InferenceWorker(
            backend.engine,
            worker_id=options["worker_id"],
            max_jobs=options["max_jobs"],
            model_name=backend.model_name,
            device=backend.device,
            prompt_builder=backend.prompt_builder,
        )

        def stop(signum: int, frame: Any) -> None:
            self.stderr.write(f"Signal {signum}: no new jobs; finishing the running ones.")
            worker.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        window = f" ({backend.context_window:,}-token window)" if backend.context_window else ""
        self.stdout.write(
            f"Worker {worker.worker_id} serving {backend.model_name} on {backend.device}{window}",
        )
        self.stdout.flush()
        try:
            worker.run()
        finally:
            backend.shutdown()
