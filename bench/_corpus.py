"""What the benchmarks over the installed Django package share: the corpus and a database.

Nothing here configures Django: each benchmark points ``QWEB_DATA_DIR`` at its own throwaway
folder and calls ``django.setup()`` before it uses ``throwaway_database``.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import django


def load_corpus() -> dict[str, bytes]:
    """Every file of the installed Django package, by path relative to it."""
    root = Path(django.__file__).parent
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def write_archive(files: dict[str, bytes], path: Path) -> Path:
    """A .tar.gz of ``files`` under one top-level ``django/`` folder, as a release would be.

    The import strips that folder, so the repository's paths are the package-relative ones.
    """
    with tarfile.open(path, "w:gz", compresslevel=1) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"django/{name}")
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return path


@contextmanager
def throwaway_database(work: Path, label: str) -> Iterator[None]:
    """A database of the benchmark's own for the duration, created, migrated, then dropped.

    SQLite in ``work`` or ``qweb_bench_<label>_<pid>`` on the server ``DATABASE_URL`` names;
    never the test suite's ``test_…`` one another run may be using.
    """
    from django.db import connection

    old_name = connection.settings_dict["NAME"]
    connection.settings_dict.setdefault("TEST", {})["NAME"] = (
        str(work / "bench.sqlite3")
        if connection.vendor == "sqlite"
        else f"qweb_bench_{label}_{os.getpid()}"
    )
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
