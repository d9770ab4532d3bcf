from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inference.loader import ModelLoadError, load_model, model_info


class Command(BaseCommand):
    help = (
        "Load a model directory as the worker would and report total parameters, parameters "
        "stored as int8, bytes on the device and the dtype of each kind of module."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("directory")
        parser.add_argument("--quantize", choices=["int8", "none"], default="int8")
        parser.add_argument("--device", default="cpu")
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            model = load_model(
                options["directory"], quantize=options["quantize"], device=options["device"]
            )
        except ModelLoadError as error:
            raise CommandError(str(error)) from None
        info = model_info(model)
        if options["json"]:
            self.stdout.write(json.dumps(info, indent=2, default=str))
            return
        for key, value in info.items():
            self.stdout.write(f"{key}: {value}")
