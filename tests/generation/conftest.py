from __future__ import annotations

from pathlib import Path

import pytest

# The real `transformers serve` on loopback, for the worker's remote backend.
from tests.inference.conftest import tiny_model_dir, transformers_serve  # noqa: F401


@pytest.fixture(scope="session")
def demo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from inference.tiny import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("demo-model"), seed=0)


@pytest.fixture(scope="session")
def demo_backend(demo_model_dir):
    """The real local backend (int8 tiny model, continuous batching), shared by the session."""
    from django.test import override_settings

    from apps.generation.backends import local_backend

    with override_settings(QWEB_MODEL_DIR=demo_model_dir, QWEB_DEVICE="cpu"):
        backend = local_backend()
    yield backend
    backend.shutdown()
