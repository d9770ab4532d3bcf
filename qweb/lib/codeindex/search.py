"""BM25 search over files and symbol-aligned chunks, plus name search over symbols."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import bm25s
import numpy as np

from qweb.lib.codeindex.symbols import Definition, FileSymbols
from qweb.lib.codeindex.tokens import IDENTIFIER, identifier_words, tokenize

# Bump when the tokenizer or the stored layout changes: an index saved by another version
# must be rebuilt, not silently searched with different tokens.
INDEX_FORMAT = 1
_MANIFEST = "manifest.json"
_DOCUMENTS = "documents.json"
_SYMBOLS = "symbols.json"
_BM25_DIR = "bm25"

_BACKTICKED = re.compile(r"`([^`]+)`")
# Share of the best BM25 score added to documents defining an identifier named in the query.
DEFINITION_BOOST = 0.5
CHUNK_MIN_LINES = 40
CHUNK_MAX_LINES = 80
# Lines that belong to the definition below them, so a chunk should start above them.
_LEADING_LINE = re.compile(r"\s*(?:@|#|//|/\*|\*|--|<!--)")


@dataclass(frozen=True, slots=True)
class Document:
    """A searchable unit: a whole file, or lines ``start_line``–``end_line`` of one."""

    id: str
    path: str
    text: str
    start_line: int = 1
    end_line: int = 0
    kind: str = "file"


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """What a search hit points at; the text itself stays in git."""

    id: str
    path: str
    start_line: int
    end_line: int
    kind: str


@dataclass(frozen=True, slots=True)
class SymbolEntry:
    """A definition with its file, as stored for name search."""

    name: str
    kind: str
    path: str
    start_line: int
    end_line: int
    signature: str
    parent: str | None = None

    @classmethod
    def from_definition(cls, path: str, definition: Definition) -> SymbolEntry:
        """Attach a file path to a definition."""
        return cls(
            name=definition.name,
            kind=definition.kind,
            path=path,
            start_line=definition.start_line,
            end_line=definition.end_line,
            signature=definition.signature,
            parent=definition.parent,
        )


def file_document(path: str, text: str) -> Document:
    """One document for a whole file."""
    return Document(id=path, path=path, text=text, start_line=1, end_line=text.count("\n") + 1)


def chunk_documents(
    path: str,
    text: str,
    definitions: Sequence[Definition] = (),
    *,
    min_lines: int = CHUNK_MIN_LINES,
    max_lines: int = CHUNK_MAX_LINES,
) -> list[Document]:
    """Split a file into chunks of ``min_lines``–``max_lines`` lines that start at definitions."""
    lines = text.splitlines(keepends=True)
    total = len(lines)
    if total == 0:
        return []
    # Preferred cut points: top-level definitions, then members, then blank lines. A cut is
    # the 0-based index of the first line of the next chunk.
    top_level = {_cut_above(lines, d.start_line - 1) for d in definitions if d.parent is None}
    members = {_cut_above(lines, d.start_line - 1) for d in definitions if d.parent is not None}
    chunks: list[Document] = []
    start = 0
    while start < total:
        if total - start <= max_lines:
            end = total
        else:
            window = range(start + min_lines, start + max_lines + 1)
            end = (
                _last_in(window, top_level)
                or _last_in(window, members)
                or _last_blank(lines, window)
                or start + max_lines
            )
        chunks.append(
            Document(
                id=f"{path}#L{start + 1}-{end}",
                path=path,
                text="".join(lines[start:end]),
                start_line=start + 1,
                end_line=end,
                kind="chunk",
            )
        )
        start = end
    return chunks


def _cut_above(lines: list[str], index: int) -> int:
    """Move a cut up over the decorators and comments that belong to the definition."""
    while index > 0 and _LEADING_LINE.match(lines[index - 1]):
        index -= 1
    return index


def _last_in(window: range, cuts: set[int]) -> int | None:
    for index in reversed(window):
        if index in cuts:
            return index
    return None


def _last_blank(lines: list[str], window: range) -> int | None:
    for index in reversed(window):
        if index < len(lines) and not lines[index - 1].strip():
            return index
    return None


def path_tokens(path: str) -> list[str]:
    """Tokens of a path, so "auth/backends.py" is found by "auth backends"."""
    return tokenize(path.replace("/", " ").replace(".", " "))


class SymbolIndex:
    """Name search over definitions: exact, case- and style-insensitive, prefix, fuzzy."""

    def __init__(self, entries: Iterable[SymbolEntry]) -> None:
        self.entries: list[SymbolEntry] = list(entries)
        self._lower = [entry.name.lower() for entry in self.entries]
        # "get_user_model", "getUserModel" and "GetUserModel" all become "getusermodel".
        self._joined = ["".join(identifier_words(entry.name)) for entry in self.entries]
        self._words = [identifier_words(entry.name) for entry in self.entries]

    @classmethod
    def from_files(cls, files: Iterable[FileSymbols]) -> SymbolIndex:
        """Index every definition of the given files."""
        return cls(
            SymbolEntry.from_definition(item.path, definition)
            for item in files
            for definition in item.definitions
        )

    def search(self, query: str, k: int = 20) -> list[tuple[SymbolEntry, float]]:
        """Best-matching definitions for a name (``Model.save`` also checks the parent)."""
        query = query.strip()
        if not query:
            return []
        parent_query: str | None = None
        if "." in query or "::" in query:
            parent_query, _, query = query.replace("::", ".").rpartition(".")
            parent_query = parent_query.rpartition(".")[2].lower() or None
        scored: list[tuple[float, int]] = []
        lower = query.lower()
        words = identifier_words(query)
        joined = "".join(words)
        for index, entry in enumerate(self.entries):
            score = self._score(index, query, lower, words, joined)
            if score <= 0:
                continue
            if parent_query is not None:
                parent = (entry.parent or "").lower()
                score *= 1.0 if parent == parent_query else 0.5
            scored.append((score, index))
        scored.sort(key=lambda item: (-item[0], *self._tie_break(item[1])))
        return [(self.entries[index], round(score, 4)) for score, index in scored[:k]]

    def _tie_break(self, index: int) -> tuple[int, int, str, int]:
        entry = self.entries[index]
        # Types and functions before variables and members; then shorter, then by place.
        kind_rank = 0 if entry.kind in ("class", "struct", "interface", "trait", "enum") else 1
        kind_rank += 1 if entry.parent else 0
        return (kind_rank, len(entry.name), entry.path, entry.start_line)

    def _score(
        self, index: int, query: str, lower: str, words: tuple[str, ...], joined: str
    ) -> float:
        name = self.entries[index].name
        if name == query:
            return 1.0
        name_lower = self._lower[index]
        if name_lower == lower:
            return 0.95
        name_joined = self._joined[index]
        if joined and name_joined == joined:
            return 0.9
        if name_lower.startswith(lower):
            return 0.8 - 0.1 * min(1.0, (len(name) - len(query)) / 20)
        if joined and name_joined.startswith(joined):
            return 0.7
        name_words = self._words[index]
        if len(words) > 1 and _words_are_prefixes(words, name_words):
            return 0.6
        if len(lower) >= 3 and lower in name_lower:
            return 0.5
        if len(joined) >= 4 and abs(len(name_joined) - len(joined)) <= 3:
            matcher = difflib.SequenceMatcher(None, joined, name_joined)
            if matcher.quick_ratio() >= 0.8:
                ratio = matcher.ratio()
                if ratio >= 0.8:
                    return 0.4 * ratio
        return 0.0

    def to_json(self) -> list[dict[str, object]]:
        """Rows for storage."""
        return [asdict(entry) for entry in self.entries]

    @classmethod
    def from_json(cls, rows: list[dict[str, object]]) -> SymbolIndex:
        """Rebuild from stored rows."""
        return cls(SymbolEntry(**row) for row in rows)  # type: ignore[arg-type]


def _words_are_prefixes(query_words: tuple[str, ...], name_words: tuple[str, ...]) -> bool:
    """Whether each query word starts a later name word, in order: "get mod" ~ get_user_model."""
    position = 0
    for word in query_words:
        while position < len(name_words) and not name_words[position].startswith(word):
            position += 1
        if position == len(name_words):
            return False
        position += 1
    return True


class SearchIndex:
    """BM25 over documents (files and chunks) and name search over symbols."""

    def __init__(
        self,
        documents: list[DocumentInfo],
        retriever: bm25s.BM25 | None,
        symbols: SymbolIndex,
    ) -> None:
        self.documents = documents
        self.symbols = symbols
        self._retriever = retriever
        self._by_id = {document.id: document for document in documents}
        self._vocabulary: dict[str, int] = dict(retriever.vocab_dict) if retriever else {}
        self._by_path: dict[str, list[int]] = {}
        for index, document in enumerate(documents):
            self._by_path.setdefault(document.path, []).append(index)
        # name → [(path, line)], built on first boosted search.
        self._definitions: dict[str, list[tuple[str, int]]] | None = None

    def __len__(self) -> int:
        return len(self.documents)

    def document(self, doc_id: str) -> DocumentInfo:
        """Where a document id points."""
        return self._by_id[doc_id]

    def search(
        self, query: str, k: int = 10, *, definition_boost: float = DEFINITION_BOOST
    ) -> list[tuple[str, float]]:
        """Ids and scores of the best ``k`` documents for a query, best first.

        The score is BM25, plus ``definition_boost`` × the best BM25 score for documents that
        define an identifier written in the query: a question naming ``get_user_model`` wants
        its definition more than the many files that merely call it.
        """
        if self._retriever is None or k <= 0:
            return []
        tokens = [token for token in tokenize(query) if token in self._vocabulary]
        if not tokens:
            return []
        scores = np.asarray(self._retriever.get_scores(tokens), dtype=np.float64)
        if definition_boost > 0 and scores.size:
            defining = self._documents_defining(query)
            if defining:
                scores[defining] += definition_boost * max(float(scores.max()), 1.0)
        # Stable order for equal scores (document order), so results are reproducible.
        order = np.lexsort((np.arange(len(scores)), -scores))[:k]
        return [
            (self.documents[index].id, round(float(scores[index]), 6))
            for index in order
            if scores[index] > 0
        ]

    def search_paths(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        """Best files for a query: each file scored by its best document."""
        best: dict[str, float] = {}
        for doc_id, score in self.search(query, k=max(k * 8, 50)):
            path = self._by_id[doc_id].path
            best[path] = max(best.get(path, 0.0), score)
        return sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]

    def _documents_defining(self, query: str) -> list[int]:
        """Indexes of documents that contain the definition of an identifier in the query."""
        if self._definitions is None:
            self._definitions = {}
            for entry in self.symbols.entries:
                self._definitions.setdefault(entry.name, []).append((entry.path, entry.start_line))
        # Only identifiers that read as code: "get_user_model", "QuerySet", or `anything` in
        # backticks. Plain words ("reverse", "token") name many things and would skew results.
        quoted = {word for span in _BACKTICKED.findall(query) for word in IDENTIFIER.findall(span)}
        code_like = {word for word in IDENTIFIER.findall(query) if len(identifier_words(word)) > 1}
        result: set[int] = set()
        for identifier in sorted(quoted | code_like):
            for path, line in self._definitions.get(identifier, ()):
                for index in self._by_path.get(path, ()):
                    document = self.documents[index]
                    if document.start_line <= line <= max(document.end_line, document.start_line):
                        result.add(index)
        return sorted(result)

    def search_symbols(self, query: str, k: int = 20) -> list[tuple[SymbolEntry, float]]:
        """Definitions whose names match the query best."""
        return self.symbols.search(query, k)

    def save(self, directory: str | Path) -> None:
        """Write the index to a directory (created if missing), to be read back by ``load``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self._retriever is not None:
            self._retriever.save(str(directory / _BM25_DIR), show_progress=False)
        rows = [asdict(document) for document in self.documents]
        (directory / _DOCUMENTS).write_text(json.dumps(rows), encoding="utf-8")
        (directory / _SYMBOLS).write_text(json.dumps(self.symbols.to_json()), encoding="utf-8")
        manifest = {"format": INDEX_FORMAT, "documents": len(self.documents)}
        # Written last: a directory without a manifest is an interrupted save.
        (directory / _MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> SearchIndex:
        """Read an index written by ``save``; raises ValueError for another format version."""
        directory = Path(directory)
        manifest = json.loads((directory / _MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != INDEX_FORMAT:
            raise ValueError(f"search index format {manifest.get('format')} is not {INDEX_FORMAT}")
        rows = json.loads((directory / _DOCUMENTS).read_text(encoding="utf-8"))
        documents = [DocumentInfo(**row) for row in rows]
        retriever = None
        if (directory / _BM25_DIR).is_dir():
            retriever = bm25s.BM25.load(str(directory / _BM25_DIR), show_progress=False)
        symbols = SymbolIndex.from_json(
            json.loads((directory / _SYMBOLS).read_text(encoding="utf-8"))
        )
        return cls(documents, retriever, symbols)


def build(
    documents: Iterable[Document],
    symbols: Iterable[SymbolEntry] | SymbolIndex = (),
) -> SearchIndex:
    """Build a search index over documents (and, optionally, symbols for name search)."""
    infos: list[DocumentInfo] = []
    corpus: list[list[str]] = []
    for document in documents:
        infos.append(
            DocumentInfo(
                id=document.id,
                path=document.path,
                start_line=document.start_line,
                end_line=document.end_line,
                kind=document.kind,
            )
        )
        corpus.append(path_tokens(document.path) + tokenize(document.text))
    retriever: bm25s.BM25 | None = None
    if corpus:
        retriever = bm25s.BM25()
        retriever.index(corpus, show_progress=False)
    symbol_index = symbols if isinstance(symbols, SymbolIndex) else SymbolIndex(symbols)
    return SearchIndex(infos, retriever, symbol_index)
