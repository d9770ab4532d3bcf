from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from inference.tiny import make_tiny_model


class Command(BaseCommand):
    help = (
        "Build a tiny random Qwen3-MoE with a locally trained tokenizer in DIR, laid out like a "
        "Hugging Face checkpoint. For tests and the demo: it produces text, not answers."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("directory", nargs="?", help="Default: QWEB_MODEL_DIR (with --demo).")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--if-missing", action="store_true", help="Do nothing when DIR already holds a model."
        )
        parser.add_argument(
            "--demo",
            action="store_true",
            help="Build the demo model into QWEB_MODEL_DIR unless a model is there already.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["demo"]:
            options["directory"] = options["directory"] or str(settings.QWEB_MODEL_DIR)
            options["if_missing"] = True
        if not options["directory"]:
            raise CommandError("Name the directory (or pass --demo).")
        directory = Path(options["directory"])
        if options["if_missing"] and (directory / "config.json").exists():
            self.stdout.write(f"A model exists already in {directory}.")
            return
        if directory.exists() and any(directory.iterdir()):
            raise CommandError(f"{directory} is not empty; choose an empty or new folder.")
        make_tiny_model(directory, seed=options["seed"])
        self.stdout.write(self.style.SUCCESS(f"Built the tiny demo model in {directory}"))
