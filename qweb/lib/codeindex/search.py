"""BM25 search over files and symbol-aligned chunks, plus name search over symbols.

Built to be updated, not rebuilt: what a file content adds to an index (its chunks, their
token counts, its definitions) is a ``FileMaterial``, computed once per content and stored
by the caller (``to_bytes``/``from_bytes``, checked on the way back); ``build_files``
assembles a commit's index from the index of an earlier commit (files whose path and
content are unchanged are carried over as arrays) plus the material of the files that
differ. Nothing is tokenized twice, and the work of an update is numpy over the postings
plus Python only for the files that changed.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import json
import re
import zlib
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import chain
from pathlib import Path
from typing import Any

import bm25s
import msgpack
import numpy as np

from qweb.lib.codeindex.symbols import Definition, FileSymbols
from qweb.lib.codeindex.tokens import (
    IDENTIFIER,
    identifier_tokens,
    identifier_words,
    plural_stem,
    tokenize,
)

# Bump when the tokenizer, chunking or the stored layout changes: an index or a cached file
# material written by another version must be rebuilt, not searched with different tokens.
INDEX_FORMAT = 2
_MANIFEST = "manifest.json"
_DATA = "index.msgpack"
# bm25s's defaults (its "lucene" variant), which the index used when bm25s built it.
BM25_K1 = 1.5
BM25_B = 0.75

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
    return [
        Document(
            id=chunk_id(path, start, end),
            path=path,
            text="".join(lines[start - 1 : end]),
            start_line=start,
            end_line=end,
            kind="chunk",
        )
        for start, end in chunk_spans(lines, definitions, min_lines=min_lines, max_lines=max_lines)
    ]


def chunk_id(path: str, start_line: int, end_line: int) -> str:
    """The document id of lines ``start_line``–``end_line`` of a file."""
    return f"{path}#L{start_line}-{end_line}"


def chunk_spans(
    lines: list[str],
    definitions: Sequence[Definition] = (),
    *,
    min_lines: int = CHUNK_MIN_LINES,
    max_lines: int = CHUNK_MAX_LINES,
) -> list[tuple[int, int]]:
    """First and last line (1-based, inclusive) of each chunk of a file's ``lines``."""
    total = len(lines)
    # Preferred cut points: top-level definitions, then members, then blank lines. A cut is
    # the 0-based index of the first line of the next chunk.
    top_level = {_cut_above(lines, d.start_line - 1) for d in definitions if d.parent is None}
    members = {_cut_above(lines, d.start_line - 1) for d in definitions if d.parent is not None}
    spans: list[tuple[int, int]] = []
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
        spans.append((start + 1, end))
        start = end
    return spans


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

    # Derived on the first name search: an index loaded for code search never needs them.
    @cached_property
    def _lower(self) -> list[str]:
        return [entry.name.lower() for entry in self.entries]

    @cached_property
    def _joined(self) -> list[str]:
        # "get_user_model", "getUserModel" and "GetUserModel" all become "getusermodel".
        return ["".join(words) for words in self._words]

    @cached_property
    def _words(self) -> list[tuple[str, ...]]:
        return [identifier_words(entry.name) for entry in self.entries]

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
        return [
            {
                "name": entry.name,
                "kind": entry.kind,
                "path": entry.path,
                "start_line": entry.start_line,
                "end_line": entry.end_line,
                "signature": entry.signature,
                "parent": entry.parent,
            }
            for entry in self.entries
        ]

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


@dataclass(frozen=True, slots=True, eq=False)
class TermCounts:
    """Token counts of a run of documents: a documents × ``vocabulary`` matrix in CSR form.

    Row ``d`` holds the tokens ``terms[indptr[d]:indptr[d + 1]]`` (indexes into ``vocabulary``,
    ascending) with their ``counts``; exactly what ``tokenize`` yields for each text, counted.
    """

    vocabulary: list[str]
    indptr: np.ndarray
    terms: np.ndarray
    counts: np.ndarray

    def __len__(self) -> int:
        return len(self.indptr) - 1

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> TermCounts:
        """Count the search tokens of each text."""
        # Each loop below runs in C (Counter, extend, map over dict lookups); Python code
        # runs once per text, and numpy spreads identifiers into their tokens and adds up
        # the tokens several identifiers share ("user" in user and user_id).
        row_words: list[str] = []
        row_counts: list[int] = []
        row_lengths: list[int] = []
        for text in texts:
            counted = Counter(IDENTIFIER.findall(text))
            row_words.extend(counted)
            row_counts.extend(counted.values())
            row_lengths.append(len(counted))
        words = list(dict.fromkeys(row_words))
        word_ids = _lookup(dict(zip(words, range(len(words)), strict=True)), row_words)
        parts = list(map(identifier_tokens, words))
        parts_count = np.fromiter(map(len, parts), dtype=np.int64, count=len(parts))
        flat = list(chain.from_iterable(parts))
        # Sorted, so a document's tokens come out in one order whatever else was counted
        # with it: a file's material is the same alone or counted with a whole commit.
        vocabulary = sorted(set(flat))
        flat_ids = _lookup(dict(zip(vocabulary, range(len(vocabulary)), strict=True)), flat)

        rows = len(row_lengths)
        parts_start = _indptr_from_counts(parts_count)[:-1]
        per_entry = parts_count[word_ids]
        source, _ = _range_pairs(parts_start[word_ids], np.zeros_like(word_ids), per_entry)
        row = np.repeat(
            np.repeat(np.arange(rows, dtype=np.int64), np.asarray(row_lengths, dtype=np.int64)),
            per_entry,
        )
        count = np.repeat(np.asarray(row_counts, dtype=np.int64), per_entry)
        width = max(len(vocabulary), 1)
        keys, summed = _sum_by_key(row * width + flat_ids[source], count)
        row, token = np.divmod(keys, width)
        return cls(
            vocabulary=vocabulary,
            indptr=_indptr(row, rows),
            terms=token.astype(np.int32),
            counts=summed,
        )


@dataclass(frozen=True, slots=True, eq=False)
class FileMaterial:
    """What one file content adds to a search index, whatever its path.

    The first and last line of each chunk (``starts``/``ends``, 1-based), the chunks' token
    counts, and the file's definitions (for chunking and for name search). The file's path
    adds its own tokens to each chunk when an index is assembled.
    """

    starts: np.ndarray
    ends: np.ndarray
    terms: TermCounts
    definitions: tuple[Definition, ...]

    @classmethod
    def from_text(cls, text: str, definitions: Sequence[Definition] = ()) -> FileMaterial:
        """Chunk a file as ``chunk_documents`` does and count each chunk's tokens."""
        return cls.from_texts([(text, definitions)])[0]

    @classmethod
    def from_texts(cls, files: Sequence[tuple[str, Sequence[Definition]]]) -> list[FileMaterial]:
        """``from_text`` of many files at once: the same materials, at less cost per file."""
        spans: list[list[tuple[int, int]]] = []
        chunks: list[str] = []
        for text, definitions in files:
            lines = text.splitlines(keepends=True)
            spans.append(chunk_spans(lines, definitions))
            chunks.extend("".join(lines[start - 1 : end]) for start, end in spans[-1])
        counts = TermCounts.from_texts(chunks)
        materials = []
        first_row = 0
        for (_, definitions), file_spans in zip(files, spans, strict=True):
            rows = len(file_spans)
            indptr = counts.indptr[first_row : first_row + rows + 1]
            first, last = int(indptr[0]), int(indptr[-1])
            # Ids are ranks in the sorted vocabulary, so the file's own is sorted too.
            used, local = np.unique(counts.terms[first:last], return_inverse=True)
            materials.append(
                cls(
                    starts=np.asarray([start for start, _ in file_spans], dtype=np.int32),
                    ends=np.asarray([end for _, end in file_spans], dtype=np.int32),
                    terms=TermCounts(
                        vocabulary=[counts.vocabulary[index] for index in used.tolist()],
                        indptr=indptr - first,
                        terms=local.astype(np.int32),
                        counts=counts.counts[first:last],
                    ),
                    definitions=tuple(definitions),
                )
            )
            first_row += rows
        return materials

    def to_bytes(self, key: str) -> bytes:
        """Serialise for ``key``, with a digest so damage is detected when read back."""
        payload = msgpack.packb(
            {
                "format": INDEX_FORMAT,
                "key": key,
                "starts": _pack(self.starts),
                "ends": _pack(self.ends),
                # One string: tokens are identifier parts and never hold a newline.
                "vocabulary": "\n".join(self.terms.vocabulary),
                "indptr": _pack(self.terms.indptr.astype(np.int32)),
                "terms": _pack(_narrow(self.terms.terms)),
                "counts": _pack(_narrow(self.terms.counts)),
                "definitions": [_definition_row(item) for item in self.definitions],
            },
            use_bin_type=True,
        )
        return _MATERIAL_MAGIC + _digest(payload) + payload

    @classmethod
    def from_bytes(cls, data: bytes, key: str) -> FileMaterial:
        """Read what ``to_bytes`` wrote for ``key``; ValueError for anything else."""
        header = len(_MATERIAL_MAGIC) + _DIGEST_BYTES
        payload = data[header:]
        if data[: len(_MATERIAL_MAGIC)] != _MATERIAL_MAGIC or data[
            len(_MATERIAL_MAGIC) : header
        ] != _digest(payload):
            raise ValueError("file material is damaged")
        fields = _unpackb(payload)
        if fields.get("format") != INDEX_FORMAT or fields.get("key") != key:
            raise ValueError("file material belongs to another format or content")
        try:
            material = cls(
                starts=_unpack(fields["starts"]),
                ends=_unpack(fields["ends"]),
                terms=TermCounts(
                    vocabulary=fields["vocabulary"].split("\n") if fields["vocabulary"] else [],
                    indptr=_unpack(fields["indptr"]),
                    terms=_unpack(fields["terms"]),
                    counts=_unpack(fields["counts"]),
                ),
                definitions=tuple(Definition(*row) for row in fields["definitions"]),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"file material is malformed: {error!r}") from None
        terms = material.terms
        _require(
            len(material.ends) == len(material.starts) == len(terms)
            and _is_indptr(terms.indptr, len(terms.terms))
            and len(terms.counts) == len(terms.terms)
            and _below(terms.terms, len(terms.vocabulary)),
            "file material is inconsistent",
        )
        return material


_MATERIAL_MAGIC = b"QWFM"
_DIGEST_BYTES = 16


class SearchIndex:
    """BM25 over documents (files and chunks) and name search over symbols.

    Held column-wise, as saved: documents, postings and symbols are arrays and flat lists,
    so loading is a few reads and carrying files over into the next commit's index is
    slicing. Built by ``build`` (documents) or ``build_files`` (files, incrementally).
    """

    def __init__(self, columns: dict[str, Any]) -> None:
        self._columns = columns
        self.paths: list[str] = columns["paths"]
        self._doc_ids: list[str] = columns["doc_ids"]
        self._doc_kinds: list[str] = columns["doc_kinds"]
        self._doc_path: np.ndarray = columns["doc_path"]
        self._doc_start: np.ndarray = columns["doc_start"]
        self._doc_end: np.ndarray = columns["doc_end"]
        self.vocabulary: list[str] = columns["vocabulary"]
        self._term_indptr: np.ndarray = columns["term_indptr"]
        self._post_docs: np.ndarray = columns["post_docs"]
        self._post_counts: np.ndarray = columns["post_counts"]
        self._post_scores: np.ndarray = columns["post_scores"]
        self._symbol_rows: list[list[Any]] = columns["symbol_rows"]
        self._symbol_path: np.ndarray = columns["symbol_path"]
        # Only for indexes built from files: each path's content key and its rows.
        self._file_keys: list[str] | None = columns.get("file_keys")
        self._file_doc_indptr: np.ndarray | None = columns.get("file_doc_indptr")
        self._file_symbol_indptr: np.ndarray | None = columns.get("file_symbol_indptr")
        # name → [(path, line)], built on first boosted search.
        self._definitions: dict[str, list[tuple[str, int]]] | None = None

    def __len__(self) -> int:
        return len(self._doc_ids)

    @cached_property
    def documents(self) -> list[DocumentInfo]:
        """Every document, in index order."""
        return [self._document(index) for index in range(len(self))]

    @cached_property
    def symbols(self) -> SymbolIndex:
        """Name search over the definitions of the indexed files."""
        paths = self.paths
        return SymbolIndex(
            SymbolEntry(name, kind, paths[path], start, end, signature, parent)
            for (name, kind, start, end, signature, parent), path in zip(
                self._symbol_rows, self._symbol_path.tolist(), strict=True
            )
        )

    @cached_property
    def files(self) -> dict[str, str]:
        """Content key by path, for an index built from files (else empty)."""
        if self._file_keys is None:
            return {}
        return dict(zip(self.paths, self._file_keys, strict=True))

    def _carry_table(self) -> dict[str, tuple[str, int, int, int, int, int]]:
        """Path → (content key, position, first and end document, first and end symbol)."""
        if self._file_keys is None:
            return {}
        assert self._file_doc_indptr is not None and self._file_symbol_indptr is not None
        docs = self._file_doc_indptr.tolist()
        symbols = self._file_symbol_indptr.tolist()
        return {
            path: (
                key,
                position,
                docs[position],
                docs[position + 1],
                symbols[position],
                symbols[position + 1],
            )
            for position, (path, key) in enumerate(zip(self.paths, self._file_keys, strict=True))
        }

    def _token_id(self, token: str) -> int | None:
        # The vocabulary is sorted: bisection, instead of a dictionary of all of it.
        at = bisect_left(self.vocabulary, token)
        return at if at < len(self.vocabulary) and self.vocabulary[at] == token else None

    def _terms(self) -> np.ndarray:
        """The token id of each posting."""
        return np.repeat(
            np.arange(len(self.vocabulary), dtype=np.int64), np.diff(self._term_indptr)
        )

    @cached_property
    def _retriever(self) -> bm25s.BM25:
        # bm25s scores from precomputed per-posting BM25 values in a term-major (CSC) matrix:
        # the same structure ``bm25s.BM25.load`` fills in, built here by ``_bm25_scores``.
        retriever = bm25s.BM25(k1=BM25_K1, b=BM25_B)
        retriever.scores = {
            "data": self._post_scores,
            "indices": self._post_docs,
            "indptr": self._term_indptr,
            "num_docs": len(self),
        }
        # Queries reach it as token ids (``get_scores_from_ids``), so it needs no vocab_dict.
        retriever.nonoccurrence_array = None
        return retriever

    @cached_property
    def _by_id(self) -> dict[str, int]:
        return dict(zip(self._doc_ids, range(len(self._doc_ids)), strict=True))

    @cached_property
    def _path_index(self) -> dict[str, int]:
        return dict(zip(self.paths, range(len(self.paths)), strict=True))

    def _document(self, index: int) -> DocumentInfo:
        return DocumentInfo(
            id=self._doc_ids[index],
            path=self.paths[self._doc_path[index]],
            start_line=int(self._doc_start[index]),
            end_line=int(self._doc_end[index]),
            kind=self._doc_kinds[index],
        )

    def document(self, doc_id: str) -> DocumentInfo:
        """Where a document id points."""
        return self._document(self._by_id[doc_id])

    def search(
        self, query: str, k: int = 10, *, definition_boost: float = DEFINITION_BOOST
    ) -> list[tuple[str, float]]:
        """Ids and scores of the best ``k`` documents for a query, best first.

        The score is BM25, plus ``definition_boost`` × the best BM25 score for documents that
        define an identifier written in the query: a question naming ``get_user_model`` wants
        its definition more than the many files that merely call it.
        """
        if not len(self) or k <= 0:
            return []
        token_ids = [
            token_id
            for token_id in (self._token_id(token) for token in tokenize(query))
            if token_id is not None
        ]
        if not token_ids:
            return []
        scores = np.asarray(self._retriever.get_scores_from_ids(token_ids), dtype=np.float64)
        if definition_boost > 0 and scores.size:
            defining = self._documents_defining(query)
            if defining:
                scores[defining] += definition_boost * max(float(scores.max()), 1.0)
        # Stable order for equal scores (document order), so results are reproducible.
        order = np.lexsort((np.arange(len(scores)), -scores))[:k]
        return [
            (self._doc_ids[index], round(float(scores[index]), 6))
            for index in order
            if scores[index] > 0
        ]

    def file_scores(self, query: str) -> np.ndarray:
        """BM25 of every file (in ``paths`` order) taken whole, one document per file.

        Chunks find the passage that answers; a whole file adds up the evidence spread over
        it, and its length normalisation keeps a long file that mentions every word once
        from beating the short one about the question. Counted from the chunks' postings
        (their path tokens once per file, not once per chunk), so nothing more is stored. A
        word and its plural ("handler", "handlers") are one term, as a stemmer makes them.
        """
        files = len(self.paths)
        scores = np.zeros(files, dtype=np.float64)
        if not files:
            return scores
        chunks, lengths, path_counts = self._file_table
        norm = BM25_K1 * ((1 - BM25_B) + BM25_B * lengths / max(float(lengths.mean()), 1.0))
        for token in tokenize(query):
            tf = sum(
                (
                    self._file_counts(variant, chunks, path_counts)
                    for variant in self._variants(token)
                ),
                np.zeros(files, dtype=np.float64),
            )
            present = int(np.count_nonzero(tf))
            if not present:
                continue
            idf = np.log(1 + (files - present + 0.5) / (present + 0.5))
            scores += idf * tf / (norm + tf)
        return scores

    def _variants(self, token: str) -> list[str]:
        """The indexed tokens that are ``token`` or its plural or singular."""
        return self._plural_groups.get(plural_stem(token), [token])

    @cached_property
    def _plural_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for token in self.vocabulary:
            groups.setdefault(plural_stem(token), []).append(token)
        return groups

    def _file_counts(
        self,
        token: str,
        chunks: np.ndarray,
        path_counts: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> np.ndarray:
        """How often ``token`` occurs in each file, its path counted once."""
        files = len(self.paths)
        token_id = self._token_id(token)
        if token_id is None:
            return np.zeros(files, dtype=np.float64)
        first, last = int(self._term_indptr[token_id]), int(self._term_indptr[token_id + 1])
        tf = np.bincount(
            self._doc_path[self._post_docs[first:last]],
            weights=self._post_counts[first:last],
            minlength=files,
        )
        repeated = path_counts.get(token)
        if repeated is not None:
            holders, counts = repeated
            tf[holders] -= np.maximum(chunks[holders] - 1, 0) * counts
        return tf

    @cached_property
    def _file_table(
        self,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
        """Chunks and token count of each file taken whole, and where each path token is."""
        files = len(self.paths)
        chunks = np.bincount(self._doc_path, minlength=files).astype(np.float64)
        doc_lengths = np.bincount(self._post_docs, weights=self._post_counts, minlength=len(self))
        lengths = np.bincount(self._doc_path, weights=doc_lengths, minlength=files)
        holders: dict[str, tuple[list[int], list[int]]] = {}
        for position, path in enumerate(self.paths):
            counted = Counter(path_tokens(path))
            lengths[position] -= max(chunks[position] - 1, 0) * sum(counted.values())
            for token, count in counted.items():
                found = holders.setdefault(token, ([], []))
                found[0].append(position)
                found[1].append(count)
        path_counts = {
            token: (np.asarray(positions, dtype=np.int64), np.asarray(counts, dtype=np.float64))
            for token, (positions, counts) in holders.items()
        }
        return chunks, np.maximum(lengths, 0.0), path_counts

    def search_paths(self, query: str, k: int = 10) -> list[tuple[str, float]]:
        """Best files for a query: each file scored by its best document."""
        best: dict[str, float] = {}
        for doc_id, score in self.search(query, k=max(k * 8, 50)):
            path = self.document(doc_id).path
            best[path] = max(best.get(path, 0.0), score)
        return sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]

    def _documents_defining(self, query: str) -> list[int]:
        """Indexes of documents that contain the definition of an identifier in the query."""
        # Only identifiers that read as code: "get_user_model", "QuerySet", or `anything` in
        # backticks. Plain words ("reverse", "token") name many things and would skew results.
        quoted = {word for span in _BACKTICKED.findall(query) for word in IDENTIFIER.findall(span)}
        code_like = {word for word in IDENTIFIER.findall(query) if len(identifier_words(word)) > 1}
        if not quoted and not code_like:
            return []
        if self._definitions is None:
            self._definitions = {}
            for row, path in zip(self._symbol_rows, self._symbol_path.tolist(), strict=True):
                self._definitions.setdefault(row[0], []).append((self.paths[path], row[2]))
        result: set[int] = set()
        for identifier in sorted(quoted | code_like):
            for path, line in self._definitions.get(identifier, ()):
                path_index = self._path_index.get(path)
                if path_index is None:
                    continue
                for index in np.flatnonzero(self._doc_path == path_index).tolist():
                    start = int(self._doc_start[index])
                    if start <= line <= max(int(self._doc_end[index]), start):
                        result.add(index)
        return sorted(result)

    def definitions_named(self, name: str) -> list[SymbolEntry]:
        """Every definition called exactly ``name``, in index order."""
        return [self.symbols.entries[index] for index in self._definition_rows.get(name, ())]

    @cached_property
    def _definition_rows(self) -> dict[str, list[int]]:
        rows: dict[str, list[int]] = {}
        for index, row in enumerate(self._symbol_rows):
            rows.setdefault(row[0], []).append(index)
        return rows

    def search_symbols(self, query: str, k: int = 20) -> list[tuple[SymbolEntry, float]]:
        """Definitions whose names match the query best."""
        return self.symbols.search(query, k)

    def save(self, directory: str | Path) -> None:
        """Write the index to a directory (created if missing), to be read back by ``load``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        stored = {
            name: _pack(_narrow(value) if name in _NARROWED else value)
            if isinstance(value, np.ndarray)
            else value
            for name, value in self._columns.items()
        }
        # One string instead of tens of thousands: tokens are identifier parts, never "\n".
        stored["vocabulary"] = "\n".join(self.vocabulary)
        data = msgpack.packb(stored, use_bin_type=True)
        (directory / _DATA).write_bytes(data)
        manifest = {
            "format": INDEX_FORMAT,
            "documents": len(self),
            "bytes": len(data),
            "crc32": zlib.crc32(data),
        }
        # Written last: a directory without a manifest is an interrupted save.
        (directory / _MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")

    @classmethod
    def load(cls, directory: str | Path) -> SearchIndex:
        """Read an index written by ``save``; ValueError for another format or a damaged one."""
        directory = Path(directory)
        manifest = json.loads((directory / _MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != INDEX_FORMAT:
            raise ValueError(f"search index format {manifest.get('format')} is not {INDEX_FORMAT}")
        data = (directory / _DATA).read_bytes()
        if len(data) != manifest.get("bytes") or zlib.crc32(data) != manifest.get("crc32"):
            raise ValueError(f"search index in {directory} is damaged")
        stored = _unpackb(data)
        try:
            stored["vocabulary"] = stored["vocabulary"].split("\n") if stored["vocabulary"] else []
            columns = {
                name: _unpack(value) if name in _ARRAY_COLUMNS and value is not None else value
                for name, value in stored.items()
            }
            _check_columns(columns)
        except (KeyError, TypeError, IndexError, AttributeError) as error:
            raise ValueError(f"search index in {directory} is inconsistent: {error}") from None
        return cls(columns)


# Stored in the smallest type that holds them (document numbers, counts); read back as is.
_NARROWED = frozenset({"doc_path", "post_docs", "post_counts", "symbol_path"})
_ARRAY_COLUMNS = frozenset(
    {
        "doc_path",
        "doc_start",
        "doc_end",
        "term_indptr",
        "post_docs",
        "post_counts",
        "post_scores",
        "symbol_path",
        "file_doc_indptr",
        "file_symbol_indptr",
    }
)


def _check_columns(columns: dict[str, Any]) -> None:
    """Cheap structural checks, so a bad index fails loudly instead of returning garbage."""
    documents = len(columns["doc_ids"])
    postings = len(columns["post_docs"])
    _require(
        len(columns["doc_kinds"]) == documents
        and all(len(columns[name]) == documents for name in ("doc_path", "doc_start", "doc_end"))
        and _below(columns["doc_path"], len(columns["paths"]))
        and _is_indptr(columns["term_indptr"], postings)
        and len(columns["term_indptr"]) == len(columns["vocabulary"]) + 1
        and len(columns["post_counts"]) == len(columns["post_scores"]) == postings
        and _below(columns["post_docs"], documents)
        and len(columns["symbol_path"]) == len(columns["symbol_rows"])
        and _below(columns["symbol_path"], len(columns["paths"])),
        "search index columns disagree",
    )
    if columns.get("file_keys") is not None:
        files = len(columns["paths"])
        _require(
            len(columns["file_keys"]) == files
            and len(columns["file_doc_indptr"]) == files + 1
            and _is_indptr(columns["file_doc_indptr"], documents)
            and _is_indptr(columns["file_symbol_indptr"], len(columns["symbol_rows"])),
            "search index file table disagrees",
        )


def build(
    documents: Iterable[Document],
    symbols: Iterable[SymbolEntry] | SymbolIndex = (),
) -> SearchIndex:
    """Build a search index over documents (and, optionally, symbols for name search)."""
    documents = list(documents)
    entries = symbols.entries if isinstance(symbols, SymbolIndex) else list(symbols)
    paths: dict[str, int] = {}
    for path in [document.path for document in documents] + [entry.path for entry in entries]:
        paths.setdefault(path, len(paths))
    counts = TermCounts.from_texts(document.text for document in documents)
    added = _Postings()
    added.add(
        counts.vocabulary,
        counts.terms,
        np.repeat(np.arange(len(documents), dtype=np.int64), np.diff(counts.indptr)),
        counts.counts,
    )
    everyone = np.ones(len(documents), dtype=np.int64)
    added.add_path_tokens(
        [document.path for document in documents], np.arange(len(documents)), everyone
    )
    columns = {
        "paths": list(paths),
        "doc_ids": [document.id for document in documents],
        "doc_kinds": [document.kind for document in documents],
        "doc_path": np.asarray([paths[d.path] for d in documents], dtype=np.int32),
        "doc_start": np.asarray([d.start_line for d in documents], dtype=np.int32),
        "doc_end": np.asarray([d.end_line for d in documents], dtype=np.int32),
        "symbol_rows": [
            [e.name, e.kind, e.start_line, e.end_line, e.signature, e.parent] for e in entries
        ],
        "symbol_path": np.asarray([paths[e.path] for e in entries], dtype=np.int32),
        "file_keys": None,
        "file_doc_indptr": None,
        "file_symbol_indptr": None,
    }
    columns.update(added.finish(len(documents)))
    return SearchIndex(columns)


def build_files(
    files: Sequence[tuple[str, str]],
    materials: Mapping[str, FileMaterial],
    base: SearchIndex | None = None,
) -> SearchIndex:
    """Index ``files`` — (path, content key) pairs — in the order given.

    A file whose path has the same key in ``base`` (an index built by this function, for
    example the previous commit's) is carried over from it as arrays; any other file needs
    its key in ``materials``. The result is the index that building every file from its
    material gives, column for column; only the cost differs: numpy over the postings, plus
    Python for the files that are not carried over.
    """
    carried = base._carry_table() if base is not None else {}
    plan = _plan_files(files, materials, carried)
    doc_indptr = _indptr_from_counts(plan.doc_counts)
    symbol_indptr = _indptr_from_counts(plan.symbol_counts)
    documents = int(doc_indptr[-1])
    doc_start = np.empty(documents, dtype=np.int32)
    doc_end = np.empty(documents, dtype=np.int32)
    added = _Postings()
    if base is not None:
        _carry_arrays(base, plan, doc_indptr, doc_start, doc_end, added)
    if plan.fresh:
        _add_fresh(plan.fresh, plan.paths, doc_indptr, added)
        for index, material in plan.fresh:
            first, last = int(doc_indptr[index]), int(doc_indptr[index + 1])
            doc_start[first:last] = material.starts
            doc_end[first:last] = material.ends
    doc_ids, doc_kinds, symbol_rows = _file_lists(base, plan, carried)
    paths = plan.paths
    columns = {
        "paths": paths,
        "doc_ids": doc_ids,
        "doc_kinds": doc_kinds,
        "doc_path": np.repeat(
            np.arange(len(paths), dtype=np.int32), np.asarray(plan.doc_counts, dtype=np.int64)
        ),
        "doc_start": doc_start,
        "doc_end": doc_end,
        "symbol_rows": symbol_rows,
        "symbol_path": np.repeat(
            np.arange(len(paths), dtype=np.int32), np.asarray(plan.symbol_counts, dtype=np.int64)
        ),
        "file_keys": plan.keys,
        "file_doc_indptr": doc_indptr,
        "file_symbol_indptr": symbol_indptr,
    }
    columns.update(added.finish(documents))
    return SearchIndex(columns)


@dataclass
class _FilePlan:
    """Per file of `build_files`, in order: where it comes from and how much it holds."""

    paths: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    doc_counts: list[int] = field(default_factory=list)
    symbol_counts: list[int] = field(default_factory=list)
    # The file's position in the base, or -1 for a file built from its material.
    carry_from: list[int] = field(default_factory=list)
    fresh: list[tuple[int, FileMaterial]] = field(default_factory=list)


def _plan_files(
    files: Sequence[tuple[str, str]],
    materials: Mapping[str, FileMaterial],
    carried: Mapping[str, tuple[Any, ...]],
) -> _FilePlan:
    """Which of ``files`` carry over from the base (same path, same key) and which are fresh."""
    plan = _FilePlan()
    for index, (path, key) in enumerate(files):
        plan.paths.append(path)
        plan.keys.append(key)
        found = carried.get(path)
        if found is not None and found[0] == key:
            plan.carry_from.append(found[1])
            plan.doc_counts.append(found[3] - found[2])
            plan.symbol_counts.append(found[5] - found[4])
        else:
            material = materials[key]
            plan.carry_from.append(-1)
            plan.doc_counts.append(len(material.starts))
            plan.symbol_counts.append(len(material.definitions))
            plan.fresh.append((index, material))
    return plan


def _carry_arrays(
    base: SearchIndex,
    plan: _FilePlan,
    doc_indptr: np.ndarray,
    doc_start: np.ndarray,
    doc_end: np.ndarray,
    added: _Postings,
) -> None:
    """Copy the carried files' document lines into place and their postings into ``added``."""
    source = np.asarray(plan.carry_from, dtype=np.int64)
    kept_files = np.flatnonzero(source >= 0)
    if not kept_files.size:
        return
    old_docs, new_docs = _range_pairs(
        base._file_doc_indptr[source[kept_files]],  # type: ignore[index]
        doc_indptr[kept_files],
        np.asarray(plan.doc_counts, dtype=np.int64)[kept_files],
    )
    doc_start[new_docs] = base._doc_start[old_docs]
    doc_end[new_docs] = base._doc_end[old_docs]
    # The base's postings of carried documents, renumbered; still sorted by term.
    renumber = np.full(len(base), -1, dtype=np.int64)
    renumber[old_docs] = new_docs
    post_docs = renumber[base._post_docs]
    keep = post_docs >= 0
    added.keep(base.vocabulary, base._terms()[keep], post_docs[keep], base._post_counts[keep])


def _file_lists(
    base: SearchIndex | None,
    plan: _FilePlan,
    carried: Mapping[str, tuple[Any, ...]],
) -> tuple[list[str], list[str], list[list[Any]]]:
    """Document ids, document kinds and symbol rows, in file order."""
    # The Python lists, a slice of the base's or a fresh list per file.
    doc_ids: list[str] = []
    doc_kinds: list[str] = []
    symbol_rows: list[list[Any]] = []
    materials_by_file = dict(plan.fresh)
    for index, (path, position) in enumerate(zip(plan.paths, plan.carry_from, strict=True)):
        if position >= 0:
            assert base is not None
            _, _, first, last, first_symbol, last_symbol = carried[path]
            doc_ids.extend(base._doc_ids[first:last])
            doc_kinds.extend(base._doc_kinds[first:last])
            symbol_rows.extend(base._symbol_rows[first_symbol:last_symbol])
        else:
            material = materials_by_file[index]
            doc_ids.extend(
                [
                    chunk_id(path, start, end)
                    for start, end in zip(
                        material.starts.tolist(), material.ends.tolist(), strict=True
                    )
                ]
            )
            doc_kinds.extend(["chunk"] * len(material.starts))
            symbol_rows.extend([_definition_row(item) for item in material.definitions])
    return doc_ids, doc_kinds, symbol_rows


def _add_fresh(
    fresh: list[tuple[int, FileMaterial]],
    paths: list[str],
    doc_indptr: np.ndarray,
    added: _Postings,
) -> None:
    """Postings of the files built from their material, all files at once."""
    materials = [material for _, material in fresh]
    positions = np.asarray([index for index, _ in fresh], dtype=np.int64)
    chunks = np.asarray([len(material.starts) for material in materials], dtype=np.int64)
    # One list of every material's tokens; a material's token i is at its offset + i.
    offsets = _indptr_from_counts([len(m.terms.vocabulary) for m in materials])[:-1]
    postings = np.asarray([len(m.terms.terms) for m in materials], dtype=np.int64)
    local = np.concatenate([m.terms.terms for m in materials]).astype(np.int64)
    _, docs = _range_pairs(np.zeros_like(chunks), doc_indptr[positions], chunks)
    per_doc = np.concatenate([np.diff(m.terms.indptr) for m in materials])
    added.add(
        list(chain.from_iterable(material.terms.vocabulary for material in materials)),
        local + np.repeat(offsets, postings),
        np.repeat(docs, per_doc),
        np.concatenate([m.terms.counts for m in materials]),
    )
    added.add_path_tokens([paths[index] for index, _ in fresh], doc_indptr[positions], chunks)


class _Postings:
    """(token, document, count) triples on their way into a term-major BM25 matrix.

    The vocabulary of an index is kept sorted, so carrying a base index over renumbers its
    tokens by a monotone map (its postings stay sorted by token) and no dictionary of the
    whole vocabulary is ever built; new tokens are found by bisection.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, int] = {}  # tokens of the added postings, by local id
        self._terms: list[np.ndarray] = []
        self._docs: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        empty = np.zeros(0, dtype=np.int64)
        # Postings carried over from a base index: sorted by term, no (term, doc) repeated.
        self._base: list[str] = []
        self._kept: tuple[np.ndarray, np.ndarray, np.ndarray] = (empty, empty, empty)

    def keep(
        self, vocabulary: list[str], terms: np.ndarray, docs: np.ndarray, counts: np.ndarray
    ) -> None:
        """Carry postings over from a base index with this (sorted) vocabulary."""
        self._base = vocabulary
        self._kept = (terms, docs, counts.astype(np.int64))

    def add(
        self, tokens: list[str], terms: np.ndarray, docs: np.ndarray, counts: np.ndarray
    ) -> None:
        """Add postings whose ``terms`` index into ``tokens``."""
        index = self._tokens
        unseen = [token for token in dict.fromkeys(tokens) if token not in index]
        index.update(zip(unseen, range(len(index), len(index) + len(unseen)), strict=True))
        self._terms.append(_lookup(index, tokens)[terms] if tokens else terms)
        self._docs.append(docs)
        self._counts.append(counts)

    def add_path_tokens(
        self, paths: Sequence[str], firsts: np.ndarray, documents: np.ndarray
    ) -> None:
        """Documents ``firsts[i]`` onwards (``documents[i]`` of them) hold the tokens of
        ``paths[i]`` too, so "auth/backends.py" is found by "auth backends"."""
        tokens: list[str] = []
        counts: list[int] = []
        lengths: list[int] = []
        for path in paths:
            counted = Counter(path_tokens(path))
            tokens.extend(counted)
            counts.extend(counted.values())
            lengths.append(len(counted))
        length = np.asarray(lengths, dtype=np.int64)
        documents = np.asarray(documents, dtype=np.int64)
        _, doc = _range_pairs(np.zeros_like(documents), firsts, documents)
        per_doc = np.repeat(length, documents)
        source, _ = _range_pairs(
            np.repeat(_indptr_from_counts(length)[:-1], documents), np.zeros_like(per_doc), per_doc
        )
        self.add(
            tokens, source, np.repeat(doc, per_doc), np.asarray(counts, dtype=np.int64)[source]
        )

    def finish(self, documents: int) -> dict[str, Any]:
        """Merge, drop tokens no document holds any more, and score: the BM25 columns."""
        vocabulary, base_ids, added_ids = _merge_vocabularies(self._base, list(self._tokens))
        kept_terms, kept_docs, kept_counts = self._kept
        kept_terms = base_ids[kept_terms]
        # Postings sorted by (token, document): the order a build from scratch gives.
        width = max(documents, 1)
        keys = kept_terms * width + kept_docs
        if len(keys) and not bool(np.all(keys[1:] > keys[:-1])):
            # Files came in another order than the base's: rare, and only costs a sort.
            order = np.argsort(keys, kind="stable")
            keys, kept_terms, kept_docs = keys[order], kept_terms[order], kept_docs[order]
            kept_counts = kept_counts[order]
        if self._terms:
            terms = added_ids[np.concatenate(self._terms).astype(np.int64, copy=False)]
            docs = np.concatenate(self._docs).astype(np.int64, copy=False)
            added, counts = _sum_by_key(terms * width + docs, np.concatenate(self._counts))
            terms, docs = np.divmod(added, width)
            if len(keys):
                at = np.searchsorted(keys, added)
                kept_terms = np.insert(kept_terms, at, terms)
                kept_docs = np.insert(kept_docs, at, docs)
                kept_counts = np.insert(kept_counts, at, counts)
            else:
                kept_terms, kept_docs, kept_counts = terms, docs, counts
        frequency = np.bincount(kept_terms, minlength=len(vocabulary))
        used = frequency > 0
        if not used.all():
            # Monotone renumbering keeps the postings sorted by term.
            kept_terms = (np.cumsum(used) - 1)[kept_terms]
            vocabulary = [
                token for token, keep in zip(vocabulary, used.tolist(), strict=True) if keep
            ]
            frequency = frequency[used]
        term_indptr = _indptr_from_counts(frequency)
        docs32 = kept_docs.astype(np.int32)
        counts32 = kept_counts.astype(np.int32)
        return {
            "vocabulary": vocabulary,
            "term_indptr": term_indptr,
            "post_docs": docs32,
            "post_counts": counts32,
            "post_scores": _bm25_scores(term_indptr, kept_terms, docs32, counts32, documents),
        }


def _merge_vocabularies(
    base: list[str], added: list[str]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The sorted union of a sorted ``base`` and distinct ``added`` tokens, with the new id
    of each base token and of each added token."""
    if not base:
        vocabulary = sorted(added)
        ids = _lookup(dict(zip(vocabulary, range(len(vocabulary)), strict=True)), added)
        return vocabulary, np.zeros(0, dtype=np.int64), ids
    found = [bisect_left(base, token) for token in added]
    missing = sorted(
        token
        for token, at in zip(added, found, strict=True)
        if at == len(base) or base[at] != token
    )
    # Each missing token lands after the base tokens below it and the missing ones before it.
    below = np.asarray([bisect_left(base, token) for token in missing], dtype=np.int64)
    base_ids = np.arange(len(base), dtype=np.int64)
    base_ids += np.searchsorted(below, base_ids, side="right")
    missing_ids = dict(zip(missing, (below + np.arange(len(missing))).tolist(), strict=True))
    added_ids = np.asarray(
        [
            missing_ids[token] if token in missing_ids else int(base_ids[at])
            for token, at in zip(added, found, strict=True)
        ],
        dtype=np.int64,
    )
    return sorted(base + missing), base_ids, added_ids


def _bm25_scores(
    term_indptr: np.ndarray, terms: np.ndarray, docs: np.ndarray, counts: np.ndarray, documents: int
) -> np.ndarray:
    """BM25 of every posting, as bm25s computes it (its default "lucene" variant).

    bm25s builds its matrix from each document's token list in Python, which is most of the
    time of indexing a commit and cannot be updated; the formula is two lines, so it runs
    here over whole arrays instead. The arithmetic follows bm25s step by step (float64, then
    float32), and a test checks the scores against bm25s's own index of the same tokens.
    """
    if not len(docs):
        return np.zeros(0, dtype=np.float32)
    frequency = np.diff(term_indptr).astype(np.float64)
    idf = np.log(1 + (documents - frequency + 0.5) / (frequency + 0.5)).astype(np.float32)
    doc_length = np.bincount(docs, weights=counts, minlength=documents)
    # bm25s's per-document term, k1 × (1 − b + b × length / average), once per document.
    norm = BM25_K1 * ((1 - BM25_B) + BM25_B * doc_length / doc_length.mean())
    tf = counts.astype(np.float64)
    return (idf[terms] * (tf / (norm[docs] + tf))).astype(np.float32)


def _range_pairs(
    sources: np.ndarray, targets: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs for copying runs: ``sources[i] + k`` → ``targets[i] + k``, k < lengths[i]."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    step = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return (
        np.repeat(np.asarray(sources, dtype=np.int64), lengths) + step,
        np.repeat(np.asarray(targets, dtype=np.int64), lengths) + step,
    )


def _sum_by_key(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and the sum of the values of each."""
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse, weights=values, minlength=len(unique))
    return unique, sums.astype(np.int32)


def _lookup(index: dict[str, int], keys: list[str]) -> np.ndarray:
    """``index[key]`` for every key, as an array (the loop runs in C)."""
    return np.fromiter(map(index.__getitem__, keys), dtype=np.int64, count=len(keys))


def _indptr(rows: np.ndarray, count: int) -> np.ndarray:
    return _indptr_from_counts(np.bincount(rows, minlength=count))


def _indptr_from_counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr


def _definition_row(definition: Definition) -> list[Any]:
    return [
        definition.name,
        definition.kind,
        definition.start_line,
        definition.end_line,
        definition.signature,
        definition.parent,
    ]


def _pack(array: np.ndarray) -> list[Any]:
    array = np.ascontiguousarray(array)
    return [array.dtype.str, array.tobytes()]


def _narrow(array: np.ndarray) -> np.ndarray:
    """The array in the smallest unsigned type that holds it: most materials need a byte or
    two per token id and count, not four."""
    largest = int(array.max(initial=0))
    if largest < 2**8:
        return array.astype(np.uint8)
    if largest < 2**16:
        return array.astype(np.uint16)
    return array.astype(np.int32)


def _unpack(value: list[Any]) -> np.ndarray:
    dtype, data = value
    if dtype not in {"|u1", "<u2", "<i4", "<i8", "<f4"}:
        raise ValueError(f"unexpected array type {dtype!r}")
    return np.frombuffer(data, dtype=np.dtype(dtype))


def _unpackb(data: bytes) -> dict[str, Any]:
    # Unpacking creates many small objects at once and nothing cyclic; in a process holding
    # Django's objects the collector passes this triggers cost more than the unpacking.
    collecting = gc.isenabled()
    gc.disable()
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (msgpack.UnpackException, ValueError) as error:
        raise ValueError(f"cannot read stored index data: {error}") from None
    finally:
        if collecting:
            gc.enable()
    if not isinstance(value, dict):
        raise ValueError("stored index data is not a mapping")
    return value


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=_DIGEST_BYTES).digest()


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _is_indptr(indptr: np.ndarray, total: int) -> bool:
    return (
        len(indptr) >= 1
        and int(indptr[0]) == 0
        and int(indptr[-1]) == total
        and bool(np.all(indptr[1:] >= indptr[:-1]))
    )


def _below(values: np.ndarray, limit: int) -> bool:
    return not len(values) or (int(values.min()) >= 0 and int(values.max()) < limit)
