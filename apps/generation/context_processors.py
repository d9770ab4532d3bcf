from __future__ import annotations

import functools
import json
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest

from apps.generation.backends import model_label


@functools.cache
def _is_demo(config_path: str) -> bool:
    try:
        return bool(json.loads(Path(config_path).read_text()).get("qweb_demo_model"))
    except (OSError, ValueError):
        return False


def model(request: HttpRequest) -> dict[str, object]:
    """The served model with its context window, and whether it is the tiny demo one.

    ``model_label`` is passed uncalled: templates call it only where they show it, and it reads
    the window from the shared cache (``apps.generation.backends``).
    """
    demo = settings.QWEB_INFERENCE_BACKEND == "local" and _is_demo(
        str(settings.QWEB_MODEL_DIR / "config.json")
    )
    return {"demo_model": demo, "model_label": model_label}
