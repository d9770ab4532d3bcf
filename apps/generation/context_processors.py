from __future__ import annotations

import functools
import json
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest


@functools.cache
def _is_demo(config_path: str) -> bool:
    try:
        return bool(json.loads(Path(config_path).read_text()).get("qweb_demo_model"))
    except (OSError, ValueError):
        return False


def model(request: HttpRequest) -> dict[str, object]:
    """Whether the served model is the tiny demo one, so pages can say so."""
    if settings.QWEB_INFERENCE_BACKEND != "local":
        return {"demo_model": False}
    return {"demo_model": _is_demo(str(settings.QWEB_MODEL_DIR / "config.json"))}
