from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_model_dir(tiny_model_dir: Path) -> Path:
    return tiny_model_dir


@pytest.fixture(scope="session")
def demo_backend(demo_model_dir):
    """The real local backend (int8 tiny model, continuous batching), shared by the session."""
    from django.test import override_settings

    from apps.generation.backends import local_backend

    with override_settings(QWEB_MODEL_DIR=demo_model_dir, QWEB_DEVICE="cpu"):
        backend = local_backend()
    yield backend
    backend.shutdown()
