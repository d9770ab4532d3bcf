"""Indexing a commit: files, flags, symbols, token counts, and the search index.

Incremental by blob, and the work of a new commit follows what changed:

- a blob already in ``IndexedBlob`` is never parsed again;
- a blob's search material (chunks, their token counts, its definitions) is computed once
  and kept on its ``IndexedBlob`` row (written with the row, so no extra file per blob);
- the commit's search index starts from the newest ready index of the same repository:
  files with the same path and blob are carried over as arrays, and only the others are
  added from their material. Nothing is re-read from git or re-tokenized.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

import msgpack
import pathspec
from django.db import transaction
from django.utils import timezone

from apps.ops.services import ProgressReporter, no_progress
from apps.repos.models import IndexedBlob, IndexedCommit, Repository
from apps.repos.tokens import token_counter
from qweb.lib.codeindex.languages import file_flags
from qweb.lib.codeindex.search import FileMaterial, SearchIndex, build_files
from qweb.lib.codeindex.symbols import Definition, FileSymbols, Reference, extract
from qweb.lib.gitstore import GitStore

# Larger files are listed but not parsed or searched: generated dumps, data, vendored blobs.
MAX_PARSED_BYTES = 1024 * 1024
PARSED_LANGUAGES = frozenset(
    {"python", "javascript", "typescript", "tsx", "go", "rust", "java", "c", "cpp", "ruby", "php"}
)

# Rows per ``sha IN (...)`` query: under SQLite's bound-parameter limit, whatever the tree.
_LOOKUP_BATCH = 5000

# Files tokenized together: counting many at once is cheaper per file (see from_texts).
_MATERIAL_BATCH = 512


class TreeFile(NamedTuple):
    path: str
    sha: str
    size: int
    executable: bool


def _ignored_paths(store: GitStore, commit: str, files: list[TreeFile]) -> set[str]:
    """Paths matched by the tree's own ``.gitignore`` files (deeper files decide last)."""
    specs: list[tuple[str, pathspec.PathSpec]] = []
    for item in files:
        if not (item.path == ".gitignore" or item.path.endswith("/.gitignore")):
            continue
        if item.size > 256 * 1024:
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


class _KnownBlob(NamedTuple):
    searchable: bool
    tokens: int


# Next to each commit's search index: every blob of the commit with what indexing another
# commit needs to know of it, so that indexing asks the database only about the blobs the
# base commit lacks.
_BLOB_TABLE = "blobs.msgpack"
_BLOB_TABLE_FORMAT = 1
_DIGEST_BYTES = 16


def _save_blob_table(directory: Path, known: dict[str, _KnownBlob], shas: set[str]) -> None:
    ordered = sorted(shas)
    payload = msgpack.packb(
        {
            "format": _BLOB_TABLE_FORMAT,
            "shas": "\n".join(ordered),
            "searchable": bytes(known[sha].searchable for sha in ordered),
            "tokens": [known[sha].tokens for sha in ordered],
        }
    )
    digest = hashlib.blake2b(payload, digest_size=_DIGEST_BYTES).digest()
    (directory / _BLOB_TABLE).write_bytes(digest + payload)


def _load_blob_table(directory: Path) -> dict[str, _KnownBlob]:
    """The blob table saved with an index; empty when missing or not exactly as written."""
    try:
        data = (directory / _BLOB_TABLE).read_bytes()
    except OSError:
        return {}
    payload = data[_DIGEST_BYTES:]
    if hashlib.blake2b(payload, digest_size=_DIGEST_BYTES).digest() != data[:_DIGEST_BYTES]:
        return {}
    try:
        fields = msgpack.unpackb(payload)
        shas = fields["shas"].split("\n") if fields["shas"] else []
        searchable, tokens = fields["searchable"], fields["tokens"]
        if fields["format"] != _BLOB_TABLE_FORMAT or not len(shas) == len(searchable) == len(
            tokens
        ):
            return {}
    except (ValueError, KeyError, TypeError, AttributeError, msgpack.UnpackException):
        return {}
    return {
        sha: _KnownBlob(bool(flag), count)
        for sha, flag, count in zip(shas, searchable, tokens, strict=True)
    }


def _known_blobs(shas: set[str]) -> dict[str, _KnownBlob]:
    """What the database knows of these blobs (those it has never seen are left out)."""
    ordered = sorted(shas)
    known = {}
    for start in range(0, len(ordered), _LOOKUP_BATCH):
        rows = IndexedBlob.objects.filter(sha__in=ordered[start : start + _LOOKUP_BATCH])
        for sha, size, tokens, *flags in rows.values_list(
            "sha", "size", "tokens", "binary", "vendored", "generated", "minified"
        ):
            known[sha] = _KnownBlob(not any(flags) and size <= MAX_PARSED_BYTES, tokens)
    return known


def _base_index(
    repository: Repository, sha: str
) -> tuple[SearchIndex | None, dict[str, _KnownBlob]]:
    """The newest readable index of another commit of this repository, and its blob table."""
    candidates = (
        IndexedCommit.objects.filter(repository=repository, state=IndexedCommit.State.READY)
        .exclude(sha=sha)
        .order_by("-finished_at", "-pk")[:3]
    )
    for candidate in candidates:
        try:
            index = SearchIndex.load(candidate.search_dir)
        except (OSError, ValueError):
            # Missing, of an older format, or damaged: never trusted, only skipped.
            continue
        return index, _load_blob_table(candidate.search_dir)
    return None, {}


def _stored_material(sha: str, stored: bytes | memoryview | None) -> FileMaterial | None:
    """The search material stored for a blob, or None when missing or not exactly as written."""
    if stored is None:
        return None
    try:
        return FileMaterial.from_bytes(bytes(stored), sha)
    except ValueError:
        return None


def _materials(store: GitStore, shas: list[str]) -> dict[str, FileMaterial]:
    """Search material of known blobs: as stored, else rebuilt from git and stored again."""
    materials = {}
    definitions = {}
    for start in range(0, len(shas), _LOOKUP_BATCH):
        rows = IndexedBlob.objects.filter(sha__in=shas[start : start + _LOOKUP_BATCH])
        for sha, stored, rows_definitions in rows.values_list(
            "sha", "search_material", "definitions"
        ):
            material = _stored_material(sha, stored)
            if material is None:
                definitions[sha] = rows_definitions
            else:
                materials[sha] = material
    rebuilt = []
    for sha, data in store.iter_blobs(sorted(definitions)):
        material = FileMaterial.from_text(
            data.decode("utf-8", "replace"), [Definition(*row) for row in definitions[sha]]
        )
        materials[sha] = material
        rebuilt.append(IndexedBlob(sha=sha, search_material=material.to_bytes(sha)))
    IndexedBlob.objects.bulk_update(rebuilt, ["search_material"], batch_size=500)
    return materials


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the duration.

    Indexing allocates millions of small objects that form no cycles (identifiers, rows,
    lists); each automatic collection they trigger walks the whole heap of a worker holding
    Django and its caches, and finds nothing. Pausing it cuts about a tenth of the time of
    re-indexing a commit (measured on the bench); reference counting still frees everything.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def index_commit(
    *, repository: Repository, sha: str, progress: ProgressReporter = no_progress
) -> IndexedCommit:
    """Index commit ``sha`` of ``repository`` (again, if it was indexed before)."""
    with _collector_paused():
        return _index_commit(repository, sha, progress)


def _index_commit(repository: Repository, sha: str, progress: ProgressReporter) -> IndexedCommit:
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
    shas = {f.sha for f in files}

    base, base_blobs = _base_index(repository, sha)
    known = {blob_sha: base_blobs[blob_sha] for blob_sha in shas & base_blobs.keys()}
    known.update(_known_blobs(shas - known.keys()))
    new_by_sha = {f.sha: f for f in files if f.sha not in known}
    texts: dict[str, str] = {}
    materials: dict[str, FileMaterial] = {}
    new_blobs: list[IndexedBlob] = []
    total_new = max(len(new_by_sha), 1)
    for done, (blob_sha, data) in enumerate(store.iter_blobs(list(new_by_sha)), start=1):
        item = new_by_sha[blob_sha]
        blob, text = _index_blob(item.path, blob_sha, item.size, data)
        new_blobs.append(blob)
        if text is not None:
            texts[blob_sha] = text
        progress(0.05 + 0.6 * done / total_new, f"Parsing {done} of {len(new_by_sha)} new files")

    new_with_text = [blob for blob in new_blobs if blob.sha in texts]
    progress(0.65, "Counting search tokens", force=True)
    for start in range(0, len(new_with_text), _MATERIAL_BATCH):
        batch = new_with_text[start : start + _MATERIAL_BATCH]
        made = FileMaterial.from_texts([(texts[b.sha], blob_definitions(b)) for b in batch])
        for blob, material in zip(batch, made, strict=True):
            blob.search_material = material.to_bytes(blob.sha)
            materials[blob.sha] = material
    counts = token_counter().count_many([texts[blob.sha] for blob in new_with_text])
    for blob, count in zip(new_with_text, counts, strict=True):
        blob.tokens = count
        known[blob.sha] = _KnownBlob(True, count)
    for blob in new_blobs:
        known.setdefault(blob.sha, _KnownBlob(False, blob.tokens))
    texts.clear()
    IndexedBlob.objects.bulk_create(new_blobs, ignore_conflicts=True, batch_size=500)

    progress(0.8, "Building the search index", force=True)
    searchable = [(f.path, f.sha) for f in files if known[f.sha].searchable]
    carried = base.files if base is not None else {}
    wanted = sorted({key for path, key in searchable if carried.get(path) != key} - set(materials))
    materials.update(_materials(store, wanted))
    index = build_files(searchable, materials, base)
    target = indexed.search_dir
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True, exist_ok=True)
    _save_blob_table(target, known, shas)
    index.save(target)

    with transaction.atomic():
        indexed.manifest = [[f.path, f.sha, f.executable] for f in files]
        indexed.state = IndexedCommit.State.READY
        indexed.progress = 1.0
        indexed.files_total = len(files)
        indexed.files_parsed = len(new_by_sha)
        indexed.files_reused = len(files) - len(new_by_sha)
        indexed.files_ignored = len(tree) - len(files)
        indexed.tokens_total = sum(known[s].tokens for s in shas if known[s].searchable)
        indexed.finished_at = timezone.now()
        indexed.seconds = time.monotonic() - started
        indexed.save()
    return indexed
