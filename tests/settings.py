"""Settings for the test suite: the real settings module with test-only overrides."""

import os
from pathlib import Path

os.environ.setdefault(
    "QWEB_DATA_DIR", str(Path(__file__).resolve().parents[1] / "build" / "test-data")
)
# One prefix per test run, inherited by the servers and workers the tests start, so tests
# clean up their own keys and never touch another run's (or a developer's real) data.
os.environ.setdefault("QWEB_CHANNEL_PREFIX", f"qweb-test-{os.getpid()}")

from qweb.settings import *  # noqa: F403

# Fast hashing: password strength is tested through the validators, not the hasher.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405

# Serve static files straight from the source folders: no collectstatic before tests.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Tests run background tasks explicitly (TaskRunner.run_once); the live-server tests turn
# the embedded runner on in their own server process.
QWEB_EMBEDDED_WORKER = env.bool("QWEB_EMBEDDED_WORKER", False)  # noqa: F405
