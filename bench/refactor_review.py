"""Reviewing a 300-file refactor: how fast the review page opens, server-side; JSON out.

Run from the repository root (prints one JSON object on stdout, progress on stderr)::

    .venv/bin/python bench/refactor_review.py               # 300 files, 7 timed runs per page
    .venv/bin/python bench/refactor_review.py --files 300 --repeat 7
    export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres   # PostgreSQL instead
    .venv/bin/python bench/refactor_review.py

The issue's requirement: large changes stay fast, files load lazily, and a 300-file change
opens in under a second server-side. What it does, all in one process:

1. A throwaway data directory and database (``tests.settings``; SQLite there, or a
   ``qweb_bench_review_<pid>`` database created on the ``DATABASE_URL`` server, migrated and
   dropped at the end), a user who owns a workspace, and a repository of the installed
   ``django`` package's ``.py`` files imported with ``repository_import_archive`` and indexed
   with ``index_commit``.
2. A model-style answer with one SEARCH/REPLACE block in each of ``--files`` files (a comment
   line added above a ``return`` statement; SEARCH is that line and the two before it,
   unique in the file, and one the edit library applies on its own: see ``choose_edits``),
   sent through the real path as ``tests/refactors/conftest.py``'s ``propose`` fixture does:
   ``refactor_create``, the job marked done with the answer, ``changeset_job_finished``,
   ``changeset_build``. ``build_seconds`` is the whole build; its parts are timed by
   wrapping the functions the build calls (no app code changed): parsing and applying the
   edits, writing the commit, git's diff and parsing it, and the security scan (reading the
   blobs, then bandit and detect-secrets in ``scan_changes``).
3. Pages through Django's test ``Client`` (logged in with ``force_login``; no test
   instrumentation of templates), timed around ``client.get``: one untimed warm-up request
   to the refactors list, then the first (cold) request of each page, then ``--repeat``
   rounds of all three interleaved. The pages: the session's review page
   (``refactors:detail``), one file's diff partial (``refactors:file``, a different file each
   round, as the page fetches each once) and, as the baseline, the repository's tree page
   (``repos:tree``) for the same repository. Wall time and CPU time (this process and the git
   processes it waited for) are both reported: on a busy machine the CPU time swings less.
   Queries are counted on one extra request of each with ``CaptureQueriesContext``, outside
   the timed runs. Then "Accept all" is given and the review page and file partials are timed
   again (``after_accept_all``), since each file's state is then computed from verdicts.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
TARGET_DETAIL_MS = 1000
INSTRUCTION = (
    "Mark one return statement near the middle of each module with a review comment "
    "(`# Reviewed: refactor bench.`) on the line above it, at the same indentation."
)
COMMENT = "# Reviewed: refactor bench."
CONTEXT_LINES = 2


def _log(message: str) -> None:
    print(f"[refactor_review] {message}", file=sys.stderr, flush=True)


def choose_edits(files: dict[str, bytes], count: int) -> tuple[dict[str, tuple[str, str]], int]:
    """One SEARCH/REPLACE pair for each of ``count`` Python files, spread over the package.

    The edit adds a comment line above a ``return`` of the file, the one nearest the middle
    whose SEARCH (that line and the lines before it, none of them blank or a lone bracket,
    as a model would copy them) occurs exactly once in the file and which ``qweb.lib.edits``
    applies: this benchmark is about the review, not about matching (``bench/edit_apply.py``
    is). Also returns how many exact, unique blocks the library refused on the way.
    """
    from qweb.lib.edits import apply_answer, parse_answer

    candidates: dict[str, tuple[str, str]] = {}
    refused = 0
    for path, data in sorted(files.items()):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if "\r" in text:
            continue
        lines = text.split("\n")
        returns = [
            number
            for number, line in enumerate(lines)
            if number >= CONTEXT_LINES and line.lstrip().startswith("return ")
        ]
        middle = len(lines) // 2
        for number in sorted(returns, key=lambda number: abs(number - middle)):
            window = lines[number - CONTEXT_LINES : number + 1]
            search = "\n".join(window) + "\n"
            if text.count(search) != 1 or any(len(line.strip()) < 8 for line in window[:-1]):
                continue
            target = lines[number]
            indent = target[: len(target) - len(target.lstrip())]
            replace = "\n".join([*window[:-1], indent + COMMENT, target]) + "\n"
            outcome = apply_answer(
                parse_answer(answer_text({path: (search, replace)})),
                lambda wanted, path=path, text=text: text if wanted == path else None,
            )
            if [result.status for result in outcome.results] != ["applied"]:
                refused += 1
                continue
            candidates[path] = (search, replace)
            break
    if len(candidates) < count:
        raise SystemExit(f"only {len(candidates)} files can take an edit; asked for {count}")
    paths = list(candidates)
    step = len(paths) / count
    chosen = [paths[int(index * step)] for index in range(count)]
    return {path: candidates[path] for path in chosen}, refused


def answer_text(edits: dict[str, tuple[str, str]]) -> str:
    """The answer a model would give: a short plan, then one fenced block per file."""
    parts = [f"I will add a review comment above a return statement of {len(edits)} modules.\n"]
    for path, (search, replace) in edits.items():
        parts.append(
            f"{path}\n```python\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n"
        )
    return "\n".join(parts)


class StageTimer:
    """Seconds spent inside wrapped callables, by stage name (calls nested in a stage count
    in both stages)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + (time.perf_counter() - started)

        return timed

    @contextmanager
    def around(self, targets: list[tuple[object, str, str]]) -> Iterator[StageTimer]:
        """Wrap ``getattr(owner, name)`` as ``stage`` for each (owner, name, stage)."""
        with ExitStack() as stack:
            for owner, name, stage in targets:
                stack.enter_context(
                    mock.patch.object(owner, name, self.wrap(stage, getattr(owner, name)))
                )
            yield self


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _cpu_seconds() -> float:
    """CPU time of this process and of the git processes it has waited for."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _timing(first: tuple[float, float], runs: list[tuple[float, float]]) -> dict[str, Any]:
    """Wall milliseconds (median, first, min, max, every run) and CPU milliseconds."""
    walls = [wall for wall, _ in runs]
    return {
        "median": _ms(statistics.median(walls)),
        "first": _ms(first[0]),
        "min": _ms(min(walls)),
        "max": _ms(max(walls)),
        "runs": [_ms(value) for value in walls],
        "cpu_median": _ms(statistics.median(cpu for _, cpu in runs)),
        "cpu_first": _ms(first[1]),
    }


def _get(client: Any, url: str) -> tuple[tuple[float, float], Any]:
    """``(wall seconds, CPU seconds)`` of one request, and its response."""
    cpu = _cpu_seconds()
    started = time.perf_counter()
    response = client.get(url)
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu
    if response.status_code != 200:
        raise SystemExit(f"GET {url} answered {response.status_code}")
    return (elapsed, cpu), response


def _queries(client: Any, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        _get(client, url)
    return len(captured.captured_queries)


def _kb(size: int) -> float:
    return round(size / 1024, 1)


def run(arguments: argparse.Namespace, work: Path) -> dict[str, Any]:
    import django
    from django.db import connection
    from django.test import Client
    from django.urls import reverse

    from apps.accounts.models import User
    from apps.generation.models import GenerationJob
    from apps.refactors import services as refactors
    from apps.repos import services as repos
    from apps.repos.indexing import index_commit
    from apps.workspaces.models import Membership
    from apps.workspaces.services import workspace_create
    from bench._corpus import load_corpus, write_archive
    from qweb.lib.gitstore import GitStore

    python_files = {path: data for path, data in load_corpus().items() if path.endswith(".py")}
    edits, refused_while_choosing = choose_edits(python_files, arguments.files)
    answer = answer_text(edits)
    archive = write_archive(python_files, work / "django-py.tar.gz")

    user = User.objects.create_user("review@example.com", "bench-password", name="Reviewer")
    workspace = workspace_create(user=user, name="Bench", slug="bench")
    membership = Membership.objects.get(workspace=workspace, user=user)
    _log(f"importing and indexing {len(python_files)} Python files")
    started = time.perf_counter()
    repository = repos.repository_import_archive(
        workspace=workspace,
        user=user,
        name="django",
        archive_path=archive,
        filename=archive.name,
    )
    index_commit(repository=repository, sha=repository.head_sha)
    index_seconds = time.perf_counter() - started

    _log(f"proposing {len(edits)} edits")
    started = time.perf_counter()
    session = refactors.refactor_create(
        membership=membership, repository=repository, instruction=INSTRUCTION
    )
    create_seconds = time.perf_counter() - started
    changeset = session.changesets.get()
    GenerationJob.objects.filter(pk=changeset.job_id).update(
        state=GenerationJob.State.DONE, text=answer, finish_reason="stop"
    )
    job = GenerationJob.objects.get(pk=changeset.job_id)
    refactors.changeset_job_finished(job)
    stages = StageTimer()
    targets = [
        (refactors, "parse_answer", "apply_edits"),
        (refactors, "apply_answer", "apply_edits"),
        (GitStore, "commit_changes", "commit"),
        (GitStore, "diff", "diff"),
        (refactors, "parse_diff", "diff"),
        (refactors, "_scan", "scan"),
        (refactors, "scan_changes", "scan_tools"),
    ]
    started = time.perf_counter()
    with stages.around(targets):
        changeset = refactors.changeset_build(changeset_id=changeset.pk)
    build_seconds = time.perf_counter() - started
    if changeset.state != changeset.State.READY:
        raise SystemExit(f"the build failed: {changeset.error}")
    parts = {stage: round(value, 3) for stage, value in stages.seconds.items()}
    parts["other"] = round(
        build_seconds - sum(stages.seconds[s] for s in ("apply_edits", "commit", "diff", "scan")),
        3,
    )

    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    detail_url = reverse("refactors:detail", args=[workspace.slug, session.pk])
    file_base = reverse("refactors:file", args=[workspace.slug, session.pk, changeset.pk])
    paths = [item["path"] for item in changeset.files]
    step = max(1, len(paths) // (arguments.repeat + 1))
    file_urls = [
        f"{file_base}?path={quote(paths[(index * step + len(paths) // 2) % len(paths)])}"
        for index in range(arguments.repeat + 1)
    ]
    tree_url = reverse("repos:tree", args=[workspace.slug, repository.slug])

    _log(f"timing the pages: 1 cold and {arguments.repeat} warm requests each")
    _get(client, reverse("refactors:index", args=[workspace.slug]))
    detail_first, detail_response = _get(client, detail_url)
    file_first, file_response = _get(client, file_urls[0])
    tree_first, tree_response = _get(client, tree_url)
    detail_runs: list[tuple[float, float]] = []
    file_runs: list[tuple[float, float]] = []
    tree_runs: list[tuple[float, float]] = []
    for index in range(arguments.repeat):
        tree_runs.append(_get(client, tree_url)[0])
        detail_runs.append(_get(client, detail_url)[0])
        file_runs.append(_get(client, file_urls[index + 1])[0])

    # The partial highlights the whole old and new file to show a few lines: time the largest.
    largest = max(paths, key=lambda path: len(python_files[path]))
    largest_url = f"{file_base}?path={quote(largest)}"
    largest_runs = [_get(client, largest_url)[0] for _ in range(arguments.repeat)]

    # Once every file has a verdict the page computes each file's state from them, and each
    # file's partial reads the proposal's decisions: the same pages again after "Accept all".
    refactors.decisions_all(membership=membership, changeset=changeset, verdict="accept")
    accepted_detail: list[tuple[float, float]] = []
    accepted_file: list[tuple[float, float]] = []
    for index in range(arguments.repeat):
        accepted_detail.append(_get(client, detail_url)[0])
        accepted_file.append(_get(client, file_urls[index + 1])[0])

    detail = _timing(detail_first, detail_runs)
    tree = _timing(tree_first, tree_runs)
    body = detail_response.content
    lazy = body.count(b'class="file-body" data-src=')
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("select sqlite_version()")
        else:
            cursor.execute("show server_version")
        database = f"{connection.vendor} {cursor.fetchone()[0]}"
    return {
        "benchmark": "refactor_review",
        "database": database,
        "corpus": {
            "django_version": django.__version__,
            "python_files": len(python_files),
            "index_seconds": round(index_seconds, 2),
        },
        "files_in_proposal": len(changeset.files),
        "blocks_applied": changeset.blocks_applied,
        "blocks_refused": changeset.blocks_refused,
        "exact_blocks_refused_while_choosing": refused_while_choosing,
        "findings": len(changeset.findings),
        "scanner_errors": sum(f["rule"] == "scanner-error" for f in changeset.findings),
        "answer_kb": _kb(len(answer.encode())),
        "create_seconds": round(create_seconds, 3),
        "build_seconds": round(build_seconds, 3),
        "build_parts_seconds": parts,
        "detail_ms": detail,
        "file_diff_ms": _timing(file_first, file_runs),
        "file_diff_largest": {
            "path": largest,
            "kb": _kb(len(python_files[largest])),
            "ms": _timing(largest_runs[0], largest_runs),
        },
        "baseline_tree_ms": tree,
        "ratio_detail_over_tree": round(detail["median"] / tree["median"], 2),
        "ratio_detail_over_tree_cpu": round(detail["cpu_median"] / tree["cpu_median"], 2),
        "queries": _queries(client, detail_url),
        "queries_file_diff": _queries(client, file_urls[0]),
        "queries_baseline_tree": _queries(client, tree_url),
        "response_kb": {
            "detail": _kb(len(body)),
            "file_diff": _kb(len(file_response.content)),
            "baseline_tree": _kb(len(tree_response.content)),
        },
        "files_loaded_lazily": lazy,
        "after_accept_all": {
            "detail_ms": _ms(statistics.median(wall for wall, _ in accepted_detail)),
            "file_diff_ms": _ms(statistics.median(wall for wall, _ in accepted_file)),
            "queries": _queries(client, detail_url),
            "queries_file_diff": _queries(client, file_urls[0]),
        },
        "target": {
            "detail_ms_max": TARGET_DETAIL_MS,
            "median_ms": detail["median"],
            "met": detail["median"] <= TARGET_DETAIL_MS,
            "first_ms": detail["first"],
            "first_met": detail["first"] <= TARGET_DETAIL_MS,
        },
        "repeat": arguments.repeat,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average": [round(value, 2) for value in os.getloadavg()],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300, help="files the proposal changes")
    parser.add_argument("--repeat", type=int, default=7, help="timed requests of each page")
    arguments = parser.parse_args()
    if arguments.files < 1 or arguments.repeat < 1:
        parser.error("--files and --repeat must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="qweb-bench-review-"))
    # Settings read QWEB_DATA_DIR when imported: point it at the throwaway folder first.
    os.environ["QWEB_DATA_DIR"] = str(work / "data")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from bench._corpus import throwaway_database

    try:
        with throwaway_database(work, "review"):
            result = run(arguments, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
