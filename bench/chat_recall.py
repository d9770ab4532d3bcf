"""Finding the right files: the context builder's ranking against plain BM25; JSON out.

Run from the repository root (prints one JSON object on stdout)::

    .venv/bin/python bench/chat_recall.py
    .venv/bin/python bench/chat_recall.py --split dev      # only the questions tuned on

The questions are ``tests/data/django_questions.json``: questions about the installed
``django`` package, written from its documentation and docstrings, each with the files that
answer it. The package is imported and indexed once through the real services (as in
``bench/index.py``: a throwaway data directory and database), then each question is asked of

- ``context``: ``context_build`` with a budget large enough that packing never cuts the
  ranking; its ranked files (``[f.path for f in ctx.files]``) are the ranking;
- ``bm25``: plain BM25 (bm25s, default parameters) over whole files, one document per file,
  tokens ``re.findall(r"\\w+", text.lower())``, over the same files the code index searches.

For each method and split: ``recall@5`` and ``recall@10`` (a question's recall at k is the
share of its expected files in the top k, averaged over questions), ``hit@5`` (at least one
expected file in the top 5), ``mrr`` (1 / rank of the first expected file, 0 when absent),
and the seconds each query took. ``questions`` lists every question's ranks of its expected
files under both methods.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = ROOT / "tests" / "data" / "django_questions.json"
KS = (5, 10)
SPLITS = ("dev", "held-out")
# A chat-sized budget. The ranking does not depend on it (packing only marks what fits),
# but the time per query does: the repository map outline is a share of it.
BUDGET_TOKENS = 32_000
_WORD = re.compile(r"\w+")


def load_questions(path: Path = QUESTIONS) -> list[dict[str, Any]]:
    """The benchmark's questions, as stored."""
    return json.loads(path.read_text(encoding="utf-8"))["questions"]


def ranks_of(ranking: Sequence[str], expected: Sequence[str]) -> list[int | None]:
    """The 1-based rank of each expected file in ``ranking``, None where it is absent."""
    position = {path: rank for rank, path in reversed(list(enumerate(ranking, start=1)))}
    return [position.get(path) for path in expected]


def question_scores(ranking: Sequence[str], expected: Sequence[str]) -> dict[str, float]:
    """recall@k for each k, hit@5 and the reciprocal rank of one question's ranking."""
    ranks = ranks_of(ranking, expected)
    found = [rank for rank in ranks if rank is not None]
    scores = {f"recall@{k}": sum(rank <= k for rank in found) / len(expected) for k in KS}
    scores["hit@5"] = float(any(rank <= 5 for rank in found))
    scores["mrr"] = 1 / min(found) if found else 0.0
    return scores


def mean_scores(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    """Each score averaged over questions (rounded for the report)."""
    if not rows:
        return {}
    return {name: round(statistics.fmean(row[name] for row in rows), 4) for name in rows[0]}


def plain_tokens(text: str) -> list[str]:
    """The baseline's tokenizer: lowercase word characters, nothing else."""
    return _WORD.findall(text.lower())


class WholeFileBM25:
    """Plain BM25 over whole files: the baseline the context builder must beat."""

    def __init__(self, files: dict[str, str]) -> None:
        import bm25s

        self.paths = list(files)
        self._retriever = bm25s.BM25()
        self._retriever.index([plain_tokens(text) for text in files.values()], show_progress=False)
        self._vocabulary = self._retriever.vocab_dict

    def rank(self, query: str, k: int = 40) -> list[str]:
        tokens = [token for token in plain_tokens(query) if token in self._vocabulary]
        if not tokens:
            return []
        scores = self._retriever.get_scores(tokens)
        order = sorted(range(len(scores)), key=lambda index: (-scores[index], index))[:k]
        return [self.paths[index] for index in order if scores[index] > 0]


def report(
    questions: Sequence[dict[str, Any]], rankings: dict[str, dict[str, list[str]]]
) -> dict[str, Any]:
    """Scores of every method over all questions and each split, their differences, and
    every question's ranks. ``rankings`` is method → question id → ranked paths."""
    methods = list(rankings)
    per_question: dict[str, dict[str, dict[str, float]]] = {
        method: {
            item["id"]: question_scores(rankings[method][item["id"]], item["expected"])
            for item in questions
        }
        for method in methods
    }
    groups = {"all": questions} | {
        split: [item for item in questions if item["split"] == split] for split in SPLITS
    }
    summary: dict[str, Any] = {}
    for group, items in groups.items():
        if not items:
            continue
        means = {
            method: mean_scores([per_question[method][item["id"]] for item in items])
            for method in methods
        }
        entry: dict[str, Any] = {"questions": len(items), **means}
        if {"context", "bm25"} <= set(methods):
            entry["context_minus_bm25"] = {
                name: round(means["context"][name] - means["bm25"][name], 4)
                for name in means["context"]
            }
        summary[group] = entry
    rows = [
        {
            "id": item["id"],
            "split": item["split"],
            "question": item["question"],
            "expected": item["expected"],
            **{
                f"{method}_ranks": ranks_of(rankings[method][item["id"]], item["expected"])
                for method in methods
            },
            **{f"{method}_top5": rankings[method][item["id"]][:5] for method in methods},
        }
        for item in questions
    ]
    return {"summary": summary, "questions": rows}


def _timing(seconds: Sequence[float]) -> dict[str, float]:
    return {
        "first_seconds": round(seconds[0], 4),
        "median_seconds": round(statistics.median(seconds), 4),
        "mean_seconds": round(statistics.fmean(seconds), 4),
        "max_seconds": round(max(seconds), 4),
    }


def run(questions: Sequence[dict[str, Any]], work: Path) -> dict[str, Any]:
    """Import and index the Django package, then rank every question both ways."""
    import django
    from django.db import connection

    from apps.accounts.models import User
    from apps.repos import services
    from apps.repos.context import context_build
    from apps.repos.indexing import index_commit
    from apps.repos.search import index_for
    from apps.workspaces.services import workspace_create
    from bench._corpus import load_corpus, write_archive
    from qweb.lib.gitstore import GitStore

    archive = write_archive(load_corpus(), work / "django.tar.gz")
    user = User.objects.create_user("bench@example.com", "bench-password", name="Bench")
    workspace = workspace_create(user=user, name="Bench", slug="bench")
    started = time.perf_counter()
    repository = services.repository_import_archive(
        workspace=workspace,
        user=user,
        name="django",
        archive_path=archive,
        filename=archive.name,
    )
    indexed = index_commit(repository=repository, sha=repository.head_sha)
    index_seconds = time.perf_counter() - started

    manifest = {path: sha for path, sha, _ in indexed.manifest}
    missing = sorted(
        {path for item in questions for path in item["expected"] if path not in manifest}
    )
    if missing:
        raise SystemExit(f"expected files not in the repository: {', '.join(missing)}")
    # The baseline searches the files the code index searches, read from the same commit.
    searched = list(index_for(indexed).paths)
    blobs = GitStore(repository.store_path).iter_blobs([manifest[path] for path in searched])
    texts = {
        path: data.decode("utf-8", "replace")
        for path, (_, data) in zip(searched, blobs, strict=True)
    }
    started = time.perf_counter()
    baseline = WholeFileBM25(texts)
    baseline_index_seconds = time.perf_counter() - started

    rankings: dict[str, dict[str, list[str]]] = {"context": {}, "bm25": {}}
    seconds: dict[str, list[float]] = {"context": [], "bm25": []}
    for item in questions:
        started = time.perf_counter()
        context = context_build(
            repository=repository, query=item["question"], budget_tokens=BUDGET_TOKENS
        )
        seconds["context"].append(time.perf_counter() - started)
        rankings["context"][item["id"]] = [ranked.path for ranked in context.files]
        started = time.perf_counter()
        rankings["bm25"][item["id"]] = baseline.rank(item["question"])
        seconds["bm25"].append(time.perf_counter() - started)

    result = report(questions, rankings)
    return {
        "benchmark": "chat_recall",
        "corpus": {
            "django_version": django.__version__,
            "files": len(manifest),
            "files_searched": len(searched),
        },
        "database": connection.vendor,
        "methods": {
            "context": f"context_build(budget_tokens={BUDGET_TOKENS}): its ranked files",
            "bm25": "bm25s over whole files, re.findall(r'\\w+', text.lower()), same files",
        },
        "index_seconds": round(index_seconds, 2),
        "baseline_index_seconds": round(baseline_index_seconds, 2),
        "summary": result["summary"],
        "seconds_per_query": {method: _timing(values) for method, values in seconds.items()},
        "questions": result["questions"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=SPLITS, help="only the questions of one split")
    arguments = parser.parse_args()
    questions = [
        item
        for item in load_questions()
        if arguments.split is None or item["split"] == arguments.split
    ]

    work = Path(tempfile.mkdtemp(prefix="qweb-bench-recall-"))
    # Settings read QWEB_DATA_DIR when imported: point it at the throwaway folder first.
    os.environ["QWEB_DATA_DIR"] = str(work / "data")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    sys.path.insert(0, str(ROOT))
    import shutil

    import django

    django.setup()
    from bench._corpus import throwaway_database

    try:
        with throwaway_database(work, "recall"):
            result = run(questions, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
