"""Static files under the storage qweb really serves them with (hashed names, compressed).

The rest of the suite uses plain static storage, so these tests are what notices a file
that `collectstatic` cannot post-process: a `sourceMappingURL` or CSS `url()` naming a file
that is not there stops `make run` on a fresh clone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

STATIC = Path(__file__).resolve().parents[1] / "static"
VENDORED = sorted(path for path in (STATIC / "vendor").rglob("*") if path.suffix in {".js", ".css"})
MANIFEST_STORAGE = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


def test_every_vendored_library_is_checked():
    assert {path.relative_to(STATIC / "vendor").parts[0] for path in VENDORED} == {
        "highlight",
        "htmx",
        "markdown-it",
        "pico",
    }


@pytest.mark.parametrize("path", VENDORED, ids=lambda path: path.name)
def test_vendored_files_name_no_source_map(path):
    # Source maps are not vendored; the storage would refuse the dangling reference.
    assert "sourceMappingURL" not in path.read_text(encoding="utf-8")


def test_collectstatic_post_processes_every_file_with_the_manifest_storage(tmp_path):
    # Post-processing follows every CSS url()/@import and JS source map; one that names a
    # missing file fails here as it would in `make run`.
    with override_settings(STORAGES=MANIFEST_STORAGE, STATIC_ROOT=tmp_path):
        call_command("collectstatic", interactive=False, verbosity=0)

    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    sources = {str(path.relative_to(STATIC)) for path in STATIC.rglob("*") if path.is_file()}
    assert sources <= manifest.keys()
    for name in ("vendor/markdown-it/markdown-it.min.js", "vendor/pico/pico.min.css"):
        assert (tmp_path / manifest[name]).is_file()
        assert (tmp_path / f"{manifest[name]}.gz").is_file()
