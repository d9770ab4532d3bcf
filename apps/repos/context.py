"""The context builder: which files of a repository answer a question, packed into a budget.

Chat and ``manage.py repo_context`` both call ``context_build``. Files are ranked by several
signals, each of which is reported as a reason so people can see why a file went in:

- **search**: BM25 twice: over each file taken whole (the evidence spread over it, with
  length normalisation; a word and its plural count as one) and over code chunks with
  identifier-aware tokens (best chunk per file, plus a little for further matching chunks);
- **symbol**: the file defines an identifier the question names (``get_user_model``); a
  function or class counts more than a module-level value such as a setting;
- **path**: the question names the file (or its package), rare names counting more than
  common ones, plurals as their singular;
- **map**: the repository map's PageRank, personalised towards the files found above, adds
  the files those files lean on;
- **django**: for a Django project, a question that names a URL, view, model or template
  brings in the linked URLconf → view → template files;
- **pinned**: files the user pinned come first, whole.

Translation catalogues (``.po``) are scaled down: they copy the code's messages once per
language. ``bench/chat_recall.py`` measures the ranking against plain BM25.

Packing: pinned files, then the repository map outline (a fixed share of the budget), then
ranked files whole while they fit, then the best chunks of the next files.
"""

from __future__ import annotations

import functools
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from apps.repos.indexing import blob_symbols
from apps.repos.models import IndexedBlob, IndexedCommit, Repository
from apps.repos.search import index_for
from apps.repos.tokens import token_counter
from qweb.lib.codeindex.django_aware import DjangoProject, analyze
from qweb.lib.codeindex.repomap import RepoMap, build_repo_map
from qweb.lib.codeindex.tokens import plural_stem, tokenize
from qweb.lib.gitstore import GitStore

REPO_MAP_SHARE = 0.1
MAX_CANDIDATES = 40
# What each signal adds to a file's score at most; the two search scores are scaled so the
# best file has 1, and a file below MIN_SHARE of the best whole-file score is left out.
WHOLE_FILE_WEIGHT = 1.0
CHUNK_WEIGHT = 0.5
MIN_SHARE = 0.05
SYMBOL_WEIGHT = 0.8
VALUE_SYMBOL_WEIGHT = 0.2
PATH_WEIGHT = 0.3
MAP_WEIGHT = 0.3
CATALOGUE_FACTOR = 0.3
_CATALOGUE_SUFFIXES = frozenset({".po", ".pot"})
# Definition kinds that hold behaviour, as opposed to a module-level value.
_CODE_KINDS = frozenset(
    {"class", "function", "method", "struct", "interface", "trait", "enum", "module"}
)
_IDENTIFIER = re.compile(
    r"`([^`]+)`|\b([A-Za-z_][A-Za-z0-9_]*(?:_[A-Za-z0-9_]+|[a-z][A-Z][A-Za-z0-9_]*))\b"
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ContextError(Exception):
    """The repository or commit cannot give context (not indexed yet, unknown commit)."""


@dataclass
class RankedFile:
    path: str
    score: float
    reasons: list[str] = field(default_factory=list)
    tokens: int = 0
    included: str = "no"  # "whole", "chunks" or "no"
    pinned: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "score": round(self.score, 4),
            "why": self.reasons,
            "tokens": self.tokens,
            "included": self.included,
            "pinned": self.pinned,
        }


@dataclass
class RepoContext:
    repository_id: int
    commit: str
    query: str
    budget: int
    files: list[RankedFile]
    repo_map: str
    repo_map_tokens: int
    chunks: list[dict[str, Any]]
    packed_tokens: int
    tokenizer: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "repository": self.repository_id,
            "commit": self.commit,
            "query": self.query,
            "budget": self.budget,
            "tokenizer": self.tokenizer,
            "packed_tokens": self.packed_tokens,
            "repo_map_tokens": self.repo_map_tokens,
            "files": [item.as_dict() for item in self.files],
        }


def query_identifiers(query: str) -> set[str]:
    """Identifiers a question names: `quoted`, snake_case or camelCase words."""
    found = set()
    for quoted, bare in _IDENTIFIER.findall(query):
        found.update(_WORD.findall(quoted) if quoted else [bare])
    return found


@functools.lru_cache(maxsize=8)
def _repo_map(indexed_id: int, sha: str) -> tuple[RepoMap, dict[str, int]]:
    indexed = IndexedCommit.objects.get(pk=indexed_id)
    blobs = IndexedBlob.objects.defer("search_material").in_bulk(
        {row[1] for row in indexed.manifest}
    )
    files = []
    tokens = {}
    for path, blob_sha, _ in indexed.manifest:
        blob = blobs.get(blob_sha)
        if blob is None:
            continue
        tokens[path] = blob.tokens
        if blob.definitions or blob.references:
            files.append(blob_symbols(path, blob))
    return build_repo_map(files), tokens


@functools.lru_cache(maxsize=8)
def _django(repository_id: int, store_path: str, sha: str, manifest_key: int) -> DjangoProject:
    indexed = IndexedCommit.objects.get(repository_id=repository_id, sha=sha)
    wanted = [
        (path, blob_sha)
        for path, blob_sha, _ in indexed.manifest
        if path.endswith((".py", ".html", ".txt", ".jinja", ".jinja2"))
    ]
    store = GitStore(store_path)
    files = {
        path: data
        for (path, _), (_, data) in zip(
            wanted, store.iter_blobs([sha_ for _, sha_ in wanted]), strict=True
        )
    }
    return analyze(files)


def _django_matches(
    project: DjangoProject, words: set[str], identifiers: set[str]
) -> dict[str, list[str]]:
    """Files linked to URL patterns, views, models or templates the question mentions."""
    found: dict[str, list[str]] = defaultdict(list)
    if not project.detected:
        return found
    lowered = {word.lower() for word in words}
    for link in project.links:
        names = {link.url_name or "", link.view_symbol or ""}
        route_words = set(_WORD.findall(link.route or ""))
        if (
            (names & identifiers)
            or ({n.lower() for n in names if n} & lowered)
            or (route_words and route_words <= lowered)
        ):
            label = link.url_name or link.route or link.view_symbol
            found[link.urlconf_path].append(f"django: URL {label}")
            if link.view_path:
                found[link.view_path].append(f"django: view of URL {label}")
            for template in link.template_paths:
                found[template].append(f"django: template of URL {label}")
    for model in project.models:
        if model.name in identifiers or model.name.lower() in lowered:
            found[model.path].append(f"django: model {model.name}")
    if lowered & {"setting", "settings", "installed_apps", "middleware"}:
        for module in project.settings:
            found[module.path].append("django: settings module")
    return found


@functools.lru_cache(maxsize=8)
def _path_names(
    paths: tuple[str, ...],
) -> tuple[list[tuple[frozenset[str], frozenset[str]]], dict[str, float]]:
    """Each path's name words and folder words (plural endings dropped), and how rare each
    word is among the paths (inverse document frequency, scaled so a unique word has 1).

    A package's ``__init__`` file is named by its folder.
    """
    names: list[tuple[frozenset[str], frozenset[str]]] = []
    holders: dict[str, int] = defaultdict(int)
    for path in paths:
        pure = PurePosixPath(path)
        folders = list(pure.parent.parts)
        stem = pure.stem
        if stem == "__init__" and folders:
            stem = folders.pop()
        name = frozenset(plural_stem(token) for token in tokenize(stem))
        folder = frozenset(plural_stem(token) for part in folders for token in tokenize(part))
        names.append((name, folder - name))
        for word in name | folder:
            holders[word] += 1
    scale = math.log(len(paths) + 1)
    rarity = {word: math.log((len(paths) + 1) / count) / scale for word, count in holders.items()}
    return names, rarity


def _path_matches(paths: tuple[str, ...], query: str) -> dict[str, float]:
    """Paths whose file name the question uses, with a 0–1 strength: rare name words count
    most, folder words half as much."""
    names, rarity = _path_names(paths)
    wanted = {plural_stem(token) for token in tokenize(query)}
    found = {}
    for path, (name, folder) in zip(paths, names, strict=True):
        named = name & wanted
        if not named:
            continue
        strength = sum(rarity[word] for word in named)
        strength += 0.5 * sum(rarity[word] for word in folder & wanted)
        found[path] = min(1.0, strength)
    return found


@dataclass
class _Evidence:
    """What each signal found: a score per path, and the reasons shown for it, in order."""

    scores: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    reasons: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, path: str, points: float, reason: str | None = None) -> None:
        self.scores[path] += points
        if reason is not None:
            self.reasons[path].append(reason)


def _ready_commit(
    repository: Repository, sha: str, pinned: list[str] | tuple[str, ...]
) -> tuple[IndexedCommit, dict[str, str]]:
    """The indexed commit and its path → blob manifest; the pinned paths must be in it."""
    indexed = IndexedCommit.objects.filter(
        repository=repository, sha=sha, state=IndexedCommit.State.READY
    ).first()
    if indexed is None:
        raise ContextError(f"Commit {sha[:12]} of {repository.name} is not indexed yet.")
    manifest = {path: blob_sha for path, blob_sha, _ in indexed.manifest}
    unknown = [path for path in pinned if path not in manifest]
    if unknown:
        raise ContextError(f"No such file in this commit: {', '.join(unknown)}.")
    return indexed, manifest


def _search_evidence(evidence: _Evidence, index: Any, query: str) -> None:
    """Search, twice: each file taken whole (all the evidence it holds, length-normalised)
    and its best chunks (the passage that answers); each scaled so the best file has 1."""
    whole = index.file_scores(query)
    best_whole = float(whole.max(initial=0.0))
    if best_whole > 0:
        for position in np.flatnonzero(whole >= MIN_SHARE * best_whole).tolist():
            share = float(whole[position]) / best_whole
            evidence.add(
                index.paths[position],
                WHOLE_FILE_WEIGHT * share,
                f"search: the file as a whole ({share:.2f})",
            )
    per_file: dict[str, list[float]] = defaultdict(list)
    # Definitions the question names count once, in _symbol_evidence, not again here.
    for doc_id, score in index.search(query, k=MAX_CANDIDATES * 3, definition_boost=0.0):
        per_file[index.document(doc_id).path].append(score)
    top = max((max(values) for values in per_file.values()), default=0.0) or 1.0
    for path, values in per_file.items():
        values.sort(reverse=True)
        evidence.add(
            path,
            CHUNK_WEIGHT * (values[0] + 0.15 * sum(values[1:4])) / top,
            f"search: {len(values)} matching chunk{'s' if len(values) > 1 else ''}",
        )


def _symbol_evidence(evidence: _Evidence, index: Any, identifiers: set[str]) -> None:
    """Symbols the question names: a function or class it names is likely what it asks
    about; a module-level value (a setting, a constant) is more often context. A name
    defined in many files points at each of them less."""
    for identifier in identifiers:
        defining: dict[str, str] = {}
        for entry in index.definitions_named(identifier):
            if defining.get(entry.path) not in _CODE_KINDS:
                defining[entry.path] = entry.kind
        for path, kind in defining.items():
            weight = SYMBOL_WEIGHT if kind in _CODE_KINDS else VALUE_SYMBOL_WEIGHT
            evidence.add(
                path, weight / math.sqrt(len(defining)), f"symbol: defines {identifier} ({kind})"
            )


def _django_evidence(
    evidence: _Evidence,
    repository: Repository,
    indexed: IndexedCommit,
    manifest: dict[str, str],
    query: str,
    identifiers: set[str],
) -> None:
    """For a Django project, the URLconf → view → template files of what the question names."""
    if not any(
        PurePosixPath(path).name in {"manage.py", "settings.py", "urls.py"} for path in manifest
    ):
        return
    project = _django(repository.pk, str(repository.store_path), indexed.sha, indexed.pk)
    words = set(_WORD.findall(query))
    for path, why in _django_matches(project, words, identifiers).items():
        if path in manifest:
            evidence.add(path, 0.6)
            evidence.reasons[path].extend(why)


def _scale_catalogues(evidence: _Evidence) -> None:
    """Translation catalogues repeat the code's messages once per language: a question's
    words would otherwise bring dozens of copies of one string ahead of the code."""
    for path in evidence.scores:
        if PurePosixPath(path).suffix in _CATALOGUE_SUFFIXES:
            evidence.scores[path] *= CATALOGUE_FACTOR


def _map_evidence(
    evidence: _Evidence, repo_map: RepoMap, manifest: dict[str, str], identifiers: set[str]
) -> None:
    """Repository map: PageRank from the files found so far spreads to what they depend on."""
    scores = evidence.scores
    focus = sorted(scores, key=lambda path: -scores[path])[:10]
    if not focus:
        return
    ranks = dict(repo_map.file_ranks(focus_files=focus, focus_identifiers=identifiers))
    best_rank = max(ranks.values(), default=0.0) or 1.0
    for path, rank in ranks.items():
        share = rank / best_rank
        if share > 0.05 and path in manifest:
            reason = None if path in focus else f"map: central to the matching files ({share:.2f})"
            evidence.add(path, MAP_WEIGHT * math.sqrt(share), reason)


def _ranked_files(
    evidence: _Evidence,
    manifest: dict[str, str],
    pinned: list[str] | tuple[str, ...],
    file_tokens: dict[str, int],
) -> list[RankedFile]:
    """The best candidates, pinned files first, each with its score and reasons."""
    scores, reasons = evidence.scores, evidence.reasons
    for path in pinned:
        reasons[path].insert(0, "pinned")
    ranked = sorted(
        (path for path in set(scores) | set(pinned) if path in manifest),
        key=lambda path: (path not in pinned, -scores[path], path),
    )[:MAX_CANDIDATES]
    return [
        RankedFile(
            path=path,
            score=scores[path],
            reasons=reasons[path],
            tokens=file_tokens.get(path, 0),
            pinned=path in pinned,
        )
        for path in ranked
    ]


def context_build(
    *,
    repository: Repository,
    query: str,
    budget_tokens: int,
    sha: str | None = None,
    pinned: list[str] | tuple[str, ...] = (),
) -> RepoContext:
    """Rank the files of ``sha`` (the head by default) for ``query`` and pack them."""
    indexed, manifest = _ready_commit(repository, sha or repository.head_sha, pinned)
    index = index_for(indexed)
    repo_map, file_tokens = _repo_map(indexed.pk, indexed.sha)
    identifiers = query_identifiers(query)

    evidence = _Evidence()
    _search_evidence(evidence, index, query)
    _symbol_evidence(evidence, index, identifiers)
    for path, share in _path_matches(tuple(manifest), query).items():
        evidence.add(path, PATH_WEIGHT * share, "path: named in the question")
    _django_evidence(evidence, repository, indexed, manifest, query, identifiers)
    _scale_catalogues(evidence)
    _map_evidence(evidence, repo_map, manifest, identifiers)

    files = _ranked_files(evidence, manifest, pinned, file_tokens)
    return _pack(repository, indexed, query, budget_tokens, files, repo_map, identifiers, index)


def _pack(
    repository: Repository,
    indexed: IndexedCommit,
    query: str,
    budget: int,
    files: list[RankedFile],
    repo_map: RepoMap,
    identifiers: set[str],
    index: Any,
) -> RepoContext:
    counter = token_counter()
    used = 0
    for item in files:
        if item.pinned:
            item.included = "whole"
            used += item.tokens
    map_budget = max(0, min(int(budget * REPO_MAP_SHARE), budget - used))
    outline = (
        repo_map.render(
            map_budget,
            counter.count,
            focus_files=[item.path for item in files[:10]],
            focus_identifiers=identifiers,
        )
        if map_budget > 50
        else ""
    )
    map_tokens = counter.count(outline) if outline else 0
    used += map_tokens
    chunks: list[dict[str, Any]] = []
    for item in files:
        if item.pinned:
            continue
        if 0 < item.tokens <= budget - used:
            item.included = "whole"
            used += item.tokens
    # Whatever did not fit whole may still give its best chunks.
    remaining = [item for item in files if item.included == "no"]
    if remaining and budget - used > 0:
        wanted = {item.path for item in remaining}
        for doc_id, _score in index.search(query, k=MAX_CANDIDATES * 3):
            document = index.document(doc_id)
            if document.path not in wanted or document.kind == "file":
                continue
            estimate = max(1, (document.end_line - document.start_line + 1) * 10)
            if estimate > budget - used:
                continue
            chunks.append(
                {
                    "path": document.path,
                    "start_line": document.start_line,
                    "end_line": document.end_line,
                }
            )
            used += estimate
            next(item for item in remaining if item.path == document.path).included = "chunks"
    return RepoContext(
        repository_id=repository.pk,
        commit=indexed.sha,
        query=query,
        budget=budget,
        files=files,
        repo_map=outline,
        repo_map_tokens=map_tokens,
        chunks=chunks,
        packed_tokens=used,
        tokenizer=counter.name,
    )
