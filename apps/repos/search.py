"""Searching an indexed commit: code (BM25 over chunks) and symbols, with matches marked."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from apps.repos.models import IndexedCommit, Repository
from qweb.lib.codeindex.search import SearchIndex, SymbolEntry
from qweb.lib.codeindex.tokens import tokenize
from qweb.lib.gitstore import GitStore

SNIPPET_LINES = 8


@dataclass(frozen=True)
class CodeHit:
    path: str
    start_line: int
    end_line: int
    score: float
    lines: list[tuple[int, SafeString]]


@functools.lru_cache(maxsize=16)
def _load(directory: str, sha: str) -> SearchIndex:
    # Keyed by directory and sha: an index on disk never changes once written.
    return SearchIndex.load(directory)


def index_for(indexed: IndexedCommit) -> SearchIndex:
    return _load(str(indexed.search_dir), indexed.sha)


def ready_index(repository: Repository, sha: str) -> IndexedCommit | None:
    return IndexedCommit.objects.filter(
        repository=repository, sha=sha, state=IndexedCommit.State.READY
    ).first()


def _mark(line: str, words: set[str]) -> SafeString:
    """Escape a line and wrap identifiers whose parts match the query in <mark>."""
    out = []
    position = 0
    for match in re.finditer(r"[A-Za-z_][A-Za-z0-9_]*", line):
        out.append(escape(line[position : match.start()]))
        word = match.group(0)
        hit = bool(words & set(tokenize(word)))
        out.append(f"<mark>{escape(word)}</mark>" if hit else escape(word))
        position = match.end()
    out.append(escape(line[position:]))
    return mark_safe("".join(out))  # noqa: S308 - every piece is escaped above


def search_code(
    repository: Repository, indexed: IndexedCommit, query: str, limit: int = 20
) -> list[CodeHit]:
    index = index_for(indexed)
    results = index.search(query, k=limit)
    words = set(tokenize(query))
    paths = {path: sha for path, sha, _ in indexed.manifest}
    wanted = [
        path
        for path in dict.fromkeys(index.document(doc_id).path for doc_id, _ in results)
        if path in paths
    ]
    blobs = GitStore(repository.store_path).iter_blobs([paths[path] for path in wanted])
    texts = {
        path: data.decode("utf-8", "replace").splitlines()
        for path, (_, data) in zip(wanted, blobs, strict=True)
    }
    hits = []
    for doc_id, score in results:
        document = index.document(doc_id)
        lines = texts.get(document.path, [])
        start = document.start_line
        end = document.end_line or len(lines)
        # Show the lines of the chunk that match best, up to SNIPPET_LINES.
        numbered = list(enumerate(lines[start - 1 : end], start=start))
        matching = [n for n, text in numbered if words & set(tokenize(text))]
        first = matching[0] if matching else start
        shown = [
            (n, _mark(text, words)) for n, text in numbered if first <= n < first + SNIPPET_LINES
        ]
        hits.append(CodeHit(document.path, start, end, score, shown))
    return hits


def search_symbols(
    indexed: IndexedCommit, query: str, limit: int = 30
) -> list[tuple[SymbolEntry, float]]:
    return index_for(indexed).search_symbols(query, k=limit)
