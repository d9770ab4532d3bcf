"""Import and index the installed Django package through the real services; JSON out.

Run from the repository root (prints one JSON object on stdout)::

    .venv/bin/python bench/index.py              # one full index, one re-index
    .venv/bin/python bench/index.py --repeat 3   # best and median of 3 of each

What it does, all in one process:

1. Puts every file of ``Path(django.__file__).parent`` (``__pycache__`` left out) into a
   .tar.gz in a temporary folder, creates a throwaway data directory and database with
   ``tests.settings`` (SQLite there, or a ``qweb_bench_index_<pid>`` database on the server
   ``DATABASE_URL`` names; created, migrated and dropped at the end), a user and a
   workspace.
2. ``import``: ``services.repository_import_archive`` writes the archive as a commit.
3. ``full_index``: ``indexing.index_commit`` over that commit with nothing indexed before
   (no blob known, no earlier index to start from).
4. ``floor``: tree-sitter ``symbols.extract()`` alone over the same files the index parses
   (same language detection and size limit; contents already in memory). No index can be
   faster than this. ``ratio_full_over_floor`` = full index seconds / floor seconds: the
   target is at most 3. ``python_only`` repeats 2–4 with an archive of the ``.py`` files
   only, so its ratio compares like with like without the templates, locale catalogues and
   static files the whole tree also carries.
5. ``reindex``: one Python file changed (a function appended), imported as the next commit
   of the same repository and indexed. ``ratio_reindex_over_full`` is the target ≤ 0.05.
   ``first_search_seconds`` is the first code search on that commit from a cold process
   cache (it loads the index from disk); ``warm_search_seconds`` is the same query again.

With ``--repeat N`` each measurement runs N times on fresh state (a new repository, the
blob table and the index folder emptied) and the best is reported with the median next to
it. ``peak_rss_mib`` is the process's peak resident memory over the whole run (ru_maxrss);
``index_peak_traced_mib`` is tracemalloc's peak over one extra, untimed full index, which
sees Python and numpy allocations but not tree-sitter's. The token counter is the
configured model's tokenizer when ``QWEB_MODEL_DIR`` holds one, else the estimate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# Settings read QWEB_DATA_DIR when imported: point it at a throwaway folder first.
_WORK = Path(tempfile.mkdtemp(prefix="qweb-bench-index-"))
os.environ["QWEB_DATA_DIR"] = str(_WORK / "data")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402
from importlib.metadata import version  # noqa: E402
from typing import TypeVar  # noqa: E402

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from apps.accounts.models import User  # noqa: E402
from apps.repos import search as repo_search  # noqa: E402
from apps.repos import services  # noqa: E402
from apps.repos.indexing import MAX_PARSED_BYTES, PARSED_LANGUAGES, index_commit  # noqa: E402
from apps.repos.models import IndexedBlob, IndexedCommit, Repository  # noqa: E402
from apps.repos.tokens import token_counter  # noqa: E402
from apps.workspaces.services import workspace_create  # noqa: E402
from bench._corpus import load_corpus, throwaway_database, write_archive  # noqa: E402
from qweb.lib.codeindex.languages import file_flags  # noqa: E402
from qweb.lib.codeindex.symbols import extract  # noqa: E402

# The one file the re-index changes, and the query the search timings use.
CHANGED_FILE = "utils/text.py"
QUERY = "slugify text to ascii"
T = TypeVar("T")


def parsed_files(files: dict[str, bytes]) -> list[tuple[str, str, bytes]]:
    """The files the index hands to tree-sitter: the same rule as ``indexing._index_blob``."""
    chosen = []
    for path, data in files.items():
        flags = file_flags(path, data)
        if flags.indexable and len(data) <= MAX_PARSED_BYTES and flags.language in PARSED_LANGUAGES:
            chosen.append((path, flags.language, data))
    return chosen


def parse_floor(files: list[tuple[str, str, bytes]]) -> int:
    """Tree-sitter symbol extraction alone; returns the number of definitions."""
    return sum(len(extract(path, language, data).definitions) for path, language, data in files)


def reset_index_state() -> None:
    """Forget every indexed blob and index on disk, so the next index starts from nothing."""
    IndexedCommit.objects.all().delete()
    IndexedBlob.objects.all().delete()
    shutil.rmtree(Path(settings.DATA_DIR) / "index", ignore_errors=True)
    repo_search._load.cache_clear()


class Clock:
    """Wall and CPU seconds of each run of one measurement.

    CPU time counts this process and the git processes it waited for; on a machine shared
    with other work it moves far less than wall time, so ratios are given on both.
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __call__(self, run: Callable[[], T]) -> T:
        started, cpu_started = time.perf_counter(), _cpu()
        result = run()
        self.wall.append(time.perf_counter() - started)
        self.cpu.append(_cpu() - cpu_started)
        return result

    @property
    def best(self) -> float:
        return min(self.wall)

    @property
    def best_cpu(self) -> float:
        return min(self.cpu)

    def summary(self) -> dict[str, object]:
        return {
            "seconds": round(self.best, 4),
            "median_seconds": round(statistics.median(self.wall), 4),
            "cpu_seconds": round(self.best_cpu, 4),
            "runs": [round(value, 4) for value in self.wall],
        }


def _cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class Scenario:
    """One user and workspace; repositories imported and indexed through the services."""

    def __init__(self, archive_dir: Path) -> None:
        self.archive_dir = archive_dir
        self.user = User.objects.create_user("bench@example.com", "bench-password", name="Bench")
        self.workspace = workspace_create(user=self.user, name="Bench", slug="bench")
        self.count = 0

    def import_new(self, archive: Path) -> Repository:
        self.count += 1
        return services.repository_import_archive(
            workspace=self.workspace,
            user=self.user,
            name=f"django-{self.count}",
            archive_path=archive,
            filename=archive.name,
        )

    def import_next(self, repository: Repository, archive: Path) -> Repository:
        services.repository_import_archive(
            workspace=self.workspace,
            user=self.user,
            name="",
            archive_path=archive,
            filename=archive.name,
            repository=repository,
        )
        repository.refresh_from_db()
        return repository


def index_head(repository: Repository) -> IndexedCommit:
    return index_commit(repository=repository, sha=repository.head_sha)


def run(arguments: argparse.Namespace) -> dict:
    files = load_corpus()
    python_files = {path: data for path, data in files.items() if path.endswith(".py")}
    changed = dict(files)
    changed[CHANGED_FILE] = files[CHANGED_FILE] + (
        b"\n\ndef bench_changed_helper(value):\n"
        b'    """Added by bench/index.py: the one change of the re-index."""\n'
        b"    return slugify(value)\n"
    )
    archives = _WORK / "archives"
    archives.mkdir()
    tree_archive = write_archive(files, archives / "django.tar.gz")
    changed_archive = write_archive(changed, archives / "django-changed.tar.gz")
    python_archive = write_archive(python_files, archives / "django-python.tar.gz")

    scenario = Scenario(archives)
    # Grammar loading and query compilation happen once per process, not per commit.
    warmup = Clock()
    warmup(lambda: extract("warmup.py", "python", b"def f():\n    pass\n"))
    token_counter()

    imports, full, reindex, first_search, warm_search = Clock(), Clock(), Clock(), Clock(), Clock()
    floor, python_full, python_floor = Clock(), Clock(), Clock()
    tree_parsed = parsed_files(files)
    python_parsed = parsed_files(python_files)
    definitions = 0
    for _ in range(arguments.repeat):
        reset_index_state()
        repository = imports(lambda: scenario.import_new(tree_archive))
        first = full(partial(index_head, repository))
        scenario.import_next(repository, changed_archive)
        second = reindex(partial(index_head, repository))
        repo_search._load.cache_clear()
        hits = first_search(partial(repo_search.search_code, repository, second, QUERY))
        warm_search(partial(repo_search.search_code, repository, second, QUERY))
        # The floor right after the index it is compared with, under the same conditions.
        definitions = floor(lambda: parse_floor(tree_parsed))
    rss_after_tree = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    for _ in range(arguments.repeat):
        reset_index_state()
        repository = scenario.import_new(python_archive)
        python_indexed = python_full(partial(index_head, repository))
        python_floor(lambda: parse_floor(python_parsed))
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    traced_peak = None
    if not arguments.no_tracemalloc:
        reset_index_state()
        repository = scenario.import_new(tree_archive)
        tracemalloc.start()
        index_head(repository)
        _, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()

    return {
        "benchmark": "index",
        "corpus": {
            "django_version": django.__version__,
            "files": len(files),
            "bytes": sum(len(data) for data in files.values()),
            "python_files": len(python_files),
            "changed_file": CHANGED_FILE,
        },
        "database": connection.vendor,
        "token_counter": token_counter().name,
        "warmup_seconds": round(warmup.best, 4),
        "import": imports.summary(),
        "full_index": {
            **full.summary(),
            "files": first.files_total,
            "files_new": first.files_parsed,
            "files_tree_sitter": len(tree_parsed),
            "files_per_s": round(first.files_total / full.best, 1),
        },
        "floor": {
            **floor.summary(),
            "files": len(tree_parsed),
            "definitions": definitions,
            "what": "tree-sitter extract() alone over the files the full index parses",
        },
        "ratio_full_over_floor": round(full.best / floor.best, 2),
        "ratio_full_over_floor_cpu": round(full.best_cpu / floor.best_cpu, 2),
        "python_only": {
            "full_index": {
                **python_full.summary(),
                "files": python_indexed.files_total,
                "files_per_s": round(python_indexed.files_total / python_full.best, 1),
            },
            "floor": python_floor.summary(),
            "ratio_full_over_floor": round(python_full.best / python_floor.best, 2),
            "ratio_full_over_floor_cpu": round(python_full.best_cpu / python_floor.best_cpu, 2),
        },
        "reindex": {
            **reindex.summary(),
            "files": second.files_total,
            "files_new": second.files_parsed,
            "files_reused": second.files_reused,
            "first_search_seconds": round(first_search.best, 4),
            "warm_search_seconds": round(warm_search.best, 4),
            "first_search_hits": len(hits),
        },
        "ratio_reindex_over_full": round(reindex.best / full.best, 4),
        "ratio_reindex_over_full_cpu": round(reindex.best_cpu / full.best_cpu, 4),
        "targets": {"full_over_floor_max": 3.0, "reindex_over_full_max": 0.05},
        "peak_rss_mib": round(peak_rss, 1),
        "peak_rss_mib_after_whole_tree_runs": round(rss_after_tree, 1),
        "index_peak_traced_mib": (
            round(traced_peak / 2**20, 1) if traced_peak is not None else None
        ),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "repeat": arguments.repeat,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "versions": {
            name: version(name)
            for name in ("Django", "tree-sitter", "tree-sitter-python", "bm25s", "numpy")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement")
    parser.add_argument(
        "--no-tracemalloc", action="store_true", help="skip the extra traced full index"
    )
    arguments = parser.parse_args()
    try:
        with throwaway_database(_WORK, "index"):
            report = run(arguments)
    finally:
        shutil.rmtree(_WORK, ignore_errors=True)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
