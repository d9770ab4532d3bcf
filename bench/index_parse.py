"""Parse floor and full pipeline of the code index, over the installed Django package.

Run from the repository root (prints one JSON object; nothing is written)::

    .venv/bin/python bench/index_parse.py            # 3 repeats, 2048-token map
    .venv/bin/python bench/index_parse.py --repeat 5 --map-tokens 4096

The corpus is every file of ``Path(django.__file__).parent``, read into memory first so
disk speed is not measured. ``floor`` is ``symbols.extract()`` over the Python files alone:
no index can be faster than parsing. ``full`` runs what an index job does over the same
Python files (flags, symbols, chunks, tokens + BM25, symbol index, repository map build
and render, Django awareness); ``full_all_files`` does the same over every file (templates,
locale catalogues, static files; binaries are flagged and skipped). Times are the best of
``--repeat`` runs. Peak RSS covers the whole process; ``tracemalloc_peak_mib`` is a
separate, untimed run of ``full`` and sees Python and numpy allocations, not tree-sitter's.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from qweb.lib.codeindex import django_aware
from qweb.lib.codeindex.languages import file_flags
from qweb.lib.codeindex.repomap import build_repo_map
from qweb.lib.codeindex.search import Document, SymbolIndex, build, chunk_documents
from qweb.lib.codeindex.symbols import SUPPORTED_LANGUAGES, FileSymbols, extract


def load_corpus() -> dict[str, bytes]:
    """Every file of the installed Django package, by path relative to it."""
    root = Path(django.__file__).parent
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def parse_floor(python_files: dict[str, bytes]) -> int:
    """Extract symbols from every Python file; returns the number of definitions."""
    return sum(
        len(extract(path, "python", data).definitions) for path, data in python_files.items()
    )


def full_pipeline(files: dict[str, bytes], map_tokens: int, stages: dict[str, float]) -> dict:
    """Everything an index job does for one commit, timing each stage into ``stages``."""
    clock = time.perf_counter

    started = clock()
    flags = {path: file_flags(path, data) for path, data in files.items()}
    stages["flags"] = clock() - started

    started = clock()
    symbols: list[FileSymbols] = [
        extract(path, flag.language, files[path])
        for path, flag in flags.items()
        if flag.indexable and flag.language in SUPPORTED_LANGUAGES
    ]
    stages["symbols"] = clock() - started

    started = clock()
    definitions = {item.path: item.definitions for item in symbols}
    documents: list[Document] = []
    for path, flag in flags.items():
        if flag.indexable:
            text = files[path].decode("utf-8")
            documents.extend(chunk_documents(path, text, definitions.get(path, ())))
    stages["chunks"] = clock() - started

    started = clock()
    symbol_index = SymbolIndex.from_files(symbols)
    stages["symbol_index"] = clock() - started

    started = clock()
    index = build(documents, symbol_index)
    stages["tokens_and_bm25"] = clock() - started

    started = clock()
    repo_map = build_repo_map(symbols)
    stages["repomap_build"] = clock() - started

    started = clock()
    outline = repo_map.render(map_tokens)
    stages["repomap_render"] = clock() - started

    started = clock()
    project = django_aware.analyze(files)
    stages["django_aware"] = clock() - started

    return {
        "files": len(files),
        "indexed_files": sum(flag.indexable for flag in flags.values()),
        "parsed_files": len(symbols),
        "definitions": sum(len(item.definitions) for item in symbols),
        "references": sum(len(item.references) for item in symbols),
        "documents": len(index),
        "graph_edges": repo_map.edge_count,
        "map_chars": len(outline),
        "url_patterns": len(project.url_patterns),
    }


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, list[float], object]:
    """Best and all wall times of ``repeat`` runs, and the last result."""
    times: list[float] = []
    result: object = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return min(times), times, result


def timed_pipeline(files: dict[str, bytes], repeat: int, map_tokens: int) -> dict:
    """Best-of-``repeat`` run of the full pipeline, with the stage times of that best run."""
    best: tuple[float, dict[str, float], dict] | None = None
    all_times: list[float] = []
    for _ in range(repeat):
        stages: dict[str, float] = {}
        started = time.perf_counter()
        summary = full_pipeline(files, map_tokens, stages)
        elapsed = time.perf_counter() - started
        all_times.append(elapsed)
        if best is None or elapsed < best[0]:
            best = (elapsed, stages, summary)
    assert best is not None
    seconds, stages, summary = best
    return {
        "seconds": round(seconds, 4),
        "median_seconds": round(statistics.median(all_times), 4),
        "files_per_s": round(summary["files"] / seconds, 1),
        "stages_seconds": {name: round(value, 4) for name, value in stages.items()},
        **summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--map-tokens", type=int, default=2048)
    arguments = parser.parse_args()

    files = load_corpus()
    python_files = {path: data for path, data in files.items() if path.endswith(".py")}

    # Grammar loading and query compilation happen once per process, not per commit.
    started = time.perf_counter()
    extract("warmup.py", "python", b"def f():\n    return 1\n")
    warmup = time.perf_counter() - started

    floor_seconds, floor_times, definitions = best_of(
        arguments.repeat, lambda: parse_floor(python_files)
    )
    python_bytes = sum(len(data) for data in python_files.values())
    full = timed_pipeline(python_files, arguments.repeat, arguments.map_tokens)
    full_all = timed_pipeline(files, arguments.repeat, arguments.map_tokens)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    tracemalloc.start()
    full_pipeline(python_files, arguments.map_tokens, {})
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    report = {
        "benchmark": "index_parse",
        "corpus": {
            "django_version": django.__version__,
            "files": len(files),
            "bytes": sum(len(data) for data in files.values()),
            "python_files": len(python_files),
            "python_bytes": python_bytes,
        },
        "warmup_seconds": round(warmup, 4),
        "floor": {
            "seconds": round(floor_seconds, 4),
            "median_seconds": round(statistics.median(floor_times), 4),
            "files": len(python_files),
            "files_per_s": round(len(python_files) / floor_seconds, 1),
            "mib_per_s": round(python_bytes / floor_seconds / 2**20, 2),
            "definitions": definitions,
        },
        "full": full,
        "full_all_files": full_all,
        "ratio_full_over_floor": round(full["seconds"] / floor_seconds, 2),
        "peak_rss_mib": round(peak_rss_mib, 1),
        "tracemalloc_peak_mib": round(traced_peak / 2**20, 1),
        "repeat": arguments.repeat,
        "map_tokens": arguments.map_tokens,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "versions": {
            name: version(name) for name in ("tree-sitter", "tree-sitter-python", "bm25s")
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
