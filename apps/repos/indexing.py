"""Indexing a commit: files, flags, symbols, token counts, and the search index.

Incremental by blob: a blob already in ``IndexedBlob`` is reused as it is, so indexing the
next commit parses only the files that changed. The BM25 index and the repository map are
built per commit from what the blobs hold.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

import pathspec
from django.db import transaction
from django.utils import timezone

from apps.repos.models import IndexedBlob, IndexedCommit, Repository
from apps.repos.tokens import token_counter
from qweb.lib.codeindex.languages import file_flags
from qweb.lib.codeindex.search import SymbolEntry, build, chunk_documents
from qweb.lib.codeindex.symbols import Definition, FileSymbols, Reference, extract
from qweb.lib.gitstore import GitStore

# Larger files are listed but not parsed or searched: generated dumps, data, vendored blobs.
MAX_PARSED_BYTES = 1024 * 1024
PARSED_LANGUAGES = frozenset(
    {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "ruby", "php"}
)

Progress = Callable[..., None]


def _no_progress(fraction: float, label: str, *, force: bool = False) -> None:
    return None


@dataclass(frozen=True)
class TreeFile:
    path: str
    sha: str
    size: int
    executable: bool


def _ignored_paths(store: GitStore, commit: str, files: list[TreeFile]) -> set[str]:
    """Paths matched by the tree's own ``.gitignore`` files (deeper files decide last)."""
    specs: list[tuple[str, pathspec.PathSpec]] = []
    for item in files:
        if PurePosixPath(item.path).name != ".gitignore" or item.size > 256 * 1024:
            continue
        text = store.read_blob(item.sha, 256 * 1024).data.decode("utf-8", "replace")
        folder = str(PurePosixPath(item.path).parent)
        specs.append(
            ("" if folder == "." else folder, pathspec.GitIgnoreSpec.from_lines(text.splitlines()))
        )
    if not specs:
        return set()
    specs.sort(key=lambda pair: pair[0].count("/") + (1 if pair[0] else 0))
    ignored = set()
    for item in files:
        verdict = False
        for folder, spec in specs:
            if folder and not item.path.startswith(folder + "/"):
                continue
            relative = item.path[len(folder) + 1 :] if folder else item.path
            result = spec.check_file(relative)
            if result.include is not None:
                verdict = result.include
        if verdict:
            ignored.add(item.path)
    return ignored


def _definition_rows(symbols: FileSymbols) -> list[list[object]]:
    return [
        [d.name, d.kind, d.start_line, d.end_line, d.signature, d.parent]
        for d in symbols.definitions
    ]


def blob_definitions(blob: IndexedBlob) -> list[Definition]:
    return [Definition(*row) for row in blob.definitions]


def blob_symbols(path: str, blob: IndexedBlob) -> FileSymbols:
    return FileSymbols(
        path=path,
        language=blob.language,
        definitions=blob_definitions(blob),
        references=[Reference(name, line) for name, line in blob.references],
    )


def _index_blob(path: str, sha: str, size: int, data: bytes) -> tuple[IndexedBlob, str | None]:
    """Flags and symbols of one new blob; also its text when it belongs in search."""
    flags = file_flags(path, data)
    blob = IndexedBlob(
        sha=sha,
        language=flags.language or "",
        size=size,
        lines=flags.lines,
        binary=flags.binary,
        vendored=flags.vendored,
        generated=flags.generated,
        minified=flags.minified,
    )
    if not flags.indexable or size > MAX_PARSED_BYTES:
        return blob, None
    if flags.language in PARSED_LANGUAGES:
        symbols = extract(path, flags.language, data)
        blob.definitions = _definition_rows(symbols)
        # Distinct (name, line) pairs are enough for ranking; keep the rows small.
        blob.references = sorted({(r.name, r.line) for r in symbols.references})
        blob.parse_errors = symbols.has_errors
    return blob, data.decode("utf-8", "replace")


def index_commit(
    *, repository: Repository, sha: str, progress: Progress = _no_progress
) -> IndexedCommit:
    """Index commit ``sha`` of ``repository`` (again, if it was indexed before)."""
    started = time.monotonic()
    indexed, _ = IndexedCommit.objects.update_or_create(
        repository=repository,
        sha=sha,
        defaults={"state": IndexedCommit.State.RUNNING, "progress": 0.0, "error": ""},
    )
    store = GitStore(repository.store_path)
    progress(0.02, "Listing files", force=True)
    tree = [
        TreeFile(item.path, item.sha, item.size or 0, item.mode == "100755")
        for item in store.ls_tree(sha, recursive=True)
        if item.type == "blob" and item.mode in {"100644", "100755"}
    ]
    ignored = _ignored_paths(store, sha, tree)
    files = sorted((f for f in tree if f.path not in ignored), key=lambda f: f.path)

    known = {
        blob.sha: blob
        for blob in IndexedBlob.objects.filter(sha__in={f.sha for f in files}).only(
            "sha", "language", "size", "binary", "vendored", "generated", "minified"
        )
    }
    new_by_sha = {f.sha: f for f in files if f.sha not in known}
    texts: dict[str, str] = {}
    new_blobs: list[IndexedBlob] = []
    total_new = max(len(new_by_sha), 1)
    for done, (blob_sha, data) in enumerate(store.iter_blobs(list(new_by_sha)), start=1):
        item = new_by_sha[blob_sha]
        blob, text = _index_blob(item.path, blob_sha, item.size, data)
        new_blobs.append(blob)
        if text is not None:
            texts[blob_sha] = text
        progress(0.05 + 0.7 * done / total_new, f"Parsing {done} of {len(new_by_sha)} new files")

    new_with_text = [blob for blob in new_blobs if blob.sha in texts]
    counts = token_counter().count_many([texts[blob.sha] for blob in new_with_text])
    for blob, count in zip(new_with_text, counts, strict=True):
        blob.tokens = count
    IndexedBlob.objects.bulk_create(new_blobs, ignore_conflicts=True, batch_size=500)

    # Text of reused blobs is needed for the search index: read it back from git.
    reusable = [
        f for f in files if f.sha in known and f.sha not in texts and _searchable(known[f.sha])
    ]
    for blob_sha, data in store.iter_blobs(sorted({f.sha for f in reusable})):
        texts[blob_sha] = data.decode("utf-8", "replace")

    progress(0.8, "Building the search index", force=True)
    full_blobs = {
        b.sha: b
        for b in IndexedBlob.objects.filter(sha__in={f.sha for f in files if f.sha in texts})
    }
    documents = []
    symbol_entries = []
    for f in files:
        text = texts.get(f.sha)
        if text is None:
            continue
        blob = full_blobs[f.sha]
        definitions = blob_definitions(blob)
        documents.extend(chunk_documents(f.path, text, definitions))
        symbol_entries.extend(SymbolEntry.from_definition(f.path, d) for d in definitions)
    index = build(documents, symbol_entries)
    target = indexed.search_dir
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    index.save(target)

    with transaction.atomic():
        indexed.manifest = [[f.path, f.sha, f.executable] for f in files]
        indexed.state = IndexedCommit.State.READY
        indexed.progress = 1.0
        indexed.files_total = len(files)
        indexed.files_parsed = len(new_by_sha)
        indexed.files_reused = len(files) - len(new_by_sha)
        indexed.files_ignored = len(tree) - len(files)
        indexed.tokens_total = sum(
            full_blobs[s].tokens for s in {f.sha for f in files} if s in full_blobs
        )
        indexed.finished_at = timezone.now()
        indexed.seconds = time.monotonic() - started
        indexed.save()
    return indexed


def _searchable(blob: IndexedBlob) -> bool:
    return not (blob.binary or blob.vendored or blob.generated or blob.minified) and (
        blob.size <= MAX_PARSED_BYTES
    )
