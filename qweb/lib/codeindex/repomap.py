"""Repository map: files ranked by who uses whose definitions, rendered within a token budget.

The idea follows Aider's repo map: a file that references a name defined in another file
votes for it; PageRank over those votes, personalised towards the files and identifiers a
question is about, says which definitions a model most needs to see. The outline lists
the signatures of the best definitions under their file paths, as many as fit the budget.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np

from qweb.lib.codeindex.symbols import Definition, FileSymbols
from qweb.lib.codeindex.tokens import identifier_words

DAMPING = 0.85
_MAX_ITERATIONS = 100
_TOLERANCE = 1e-10
# With a focus, this share of the teleport goes to the focus files (and the files defining
# focus identifiers); the rest stays uniform so unrelated parts of the graph still rank.
FOCUS_TELEPORT_SHARE = 0.9
# Files defining a focus identifier get this much of the focus teleport relative to a focus
# file; edges and definitions carrying such an identifier are multiplied by it.
FOCUS_IDENTIFIER_WEIGHT = 10.0
# A name defined in more files than this is ambiguous ("get", "save", "__init__"): a
# reference to it says little about which definition is meant.
_AMBIGUOUS_DEFINERS = 5
# Definitions nobody references still get a sliver of their file's rank, so a large budget
# shows the rest of an important file before anything of an unimportant one.
_UNREFERENCED_SHARE = 1e-3
_MEMBER_SHARE = 0.5


def approximate_tokens(text: str) -> int:
    """Rough token count (about four characters a token) for when no tokenizer is given."""
    return (len(text) + 3) // 4


@dataclass(frozen=True, slots=True)
class RankedDefinition:
    """A definition with its file and its share of the file graph's rank."""

    path: str
    definition: Definition
    rank: float


def name_weight(
    name: str, definers: int, referencing_files: int, total_files: int, *, members_only: bool
) -> float:
    """How much one reference to ``name`` says about the file that defines it."""
    weight = 1.0
    words = identifier_words(name)
    if len(words) > 1 and len(name) >= 8:
        # A long structured name ("get_user_model", "QuerySetIterator") is deliberate and
        # rarely collides; a short one ("run", "id") often names unrelated things.
        weight *= 4.0
    elif len(name) <= 3:
        weight *= 0.3
    elif members_only:
        # A bare word that only names methods/attributes ("value", "empty") is far more
        # often somebody's local variable than a call of that method.
        weight *= 0.3
    if name.startswith("_"):
        weight *= 0.1
    if definers > _AMBIGUOUS_DEFINERS:
        weight *= 0.1
    # Rarer names weigh more, like IDF: a name half the repository uses ties files loosely.
    weight *= math.log1p(total_files / max(referencing_files, 1)) / math.log1p(total_files)
    return weight


class RepoMap:
    """The reference graph of a repository's files and the ranking of their definitions."""

    def __init__(self, files: Iterable[FileSymbols]) -> None:
        self._definitions: dict[str, list[Definition]] = {}
        definers: dict[str, set[str]] = defaultdict(set)
        top_level_names: set[str] = set()
        references: dict[str, Counter[str]] = defaultdict(Counter)
        for item in files:
            self._definitions[item.path] = list(item.definitions)
            for definition in item.definitions:
                definers[definition.name].add(item.path)
                if definition.parent is None:
                    top_level_names.add(definition.name)
            for reference in item.references:
                references[reference.name][item.path] += 1

        self.paths: list[str] = sorted(self._definitions)
        self._index = {path: position for position, path in enumerate(self.paths)}
        self._definers = {name: sorted(paths) for name, paths in definers.items()}
        total = max(len(self.paths), 2)

        sources: list[int] = []
        targets: list[int] = []
        weights: list[float] = []
        edge_names: list[str] = []
        for name in sorted(self._definers.keys() & references.keys()):
            defined_in = self._definers[name]
            users = references[name]
            base = name_weight(
                name,
                len(defined_in),
                len(users),
                total,
                members_only=name not in top_level_names,
            ) / len(defined_in)
            for user in sorted(users):
                # Square root: ten uses in one file are more than one, but not ten times.
                weight = base * math.sqrt(users[user])
                for definer in defined_in:
                    if definer == user:
                        continue
                    sources.append(self._index[user])
                    targets.append(self._index[definer])
                    weights.append(weight)
                    edge_names.append(name)
        self._sources = np.asarray(sources, dtype=np.int64)
        self._targets = np.asarray(targets, dtype=np.int64)
        self._weights = np.asarray(weights, dtype=np.float64)
        self._edge_names = edge_names

    @property
    def edge_count(self) -> int:
        """Number of (referencing file, defining file, name) edges."""
        return len(self._edge_names)

    def file_ranks(
        self, focus_files: Iterable[str] = (), focus_identifiers: Iterable[str] = ()
    ) -> list[tuple[str, float]]:
        """Files by PageRank, best first."""
        ranks, _ = self._pagerank(set(focus_files), set(focus_identifiers))
        order = sorted(range(len(self.paths)), key=lambda i: (-ranks[i], self.paths[i]))
        return [(self.paths[i], float(ranks[i])) for i in order]

    def ranked_definitions(
        self,
        focus_files: Iterable[str] = (),
        focus_identifiers: Iterable[str] = (),
        exclude_files: Iterable[str] = (),
    ) -> list[RankedDefinition]:
        """Every definition, most important first (deterministic for equal ranks)."""
        focus_identifiers = set(focus_identifiers)
        ranks, edge_flow = self._pagerank(set(focus_files), focus_identifiers)
        # The rank flowing along an edge credits the definition of that edge's name.
        credit: dict[tuple[int, str], float] = defaultdict(float)
        for target, name, flow in zip(
            self._targets.tolist(), self._edge_names, edge_flow.tolist(), strict=True
        ):
            credit[target, name] += flow

        excluded = set(exclude_files)
        ranked: list[RankedDefinition] = []
        for path in self.paths:
            if path in excluded:
                continue
            position = self._index[path]
            definitions = self._definitions[path]
            same_name = Counter(definition.name for definition in definitions)
            floor = ranks[position] * _UNREFERENCED_SHARE / max(len(definitions), 1)
            for definition in definitions:
                # Two ``save`` methods in one file share the credit their name earned.
                rank = credit.get((position, definition.name), 0.0) / same_name[definition.name]
                rank += floor * (_MEMBER_SHARE if definition.parent else 1.0)
                if definition.name in focus_identifiers:
                    # A name the question asks about belongs in the map even when nothing
                    # references it yet: it gets its file's whole (focus-boosted) rank.
                    rank = rank * FOCUS_IDENTIFIER_WEIGHT + ranks[position]
                ranked.append(RankedDefinition(path=path, definition=definition, rank=rank))
        ranked.sort(key=lambda item: (-item.rank, item.path, item.definition.start_line))
        return ranked

    def render(
        self,
        budget_tokens: int,
        count_tokens: Callable[[str], int] = approximate_tokens,
        *,
        focus_files: Iterable[str] = (),
        focus_identifiers: Iterable[str] = (),
        exclude_files: Iterable[str] = (),
    ) -> str:
        """The outline of the most important definitions that fits ``budget_tokens``."""
        ranked = self.ranked_definitions(focus_files, focus_identifiers, exclude_files)
        if budget_tokens <= 0 or not ranked:
            return ""
        # Binary search for the most definitions whose outline fits: the outline grows with
        # every definition added, so "fits" is monotonic in the count.
        low, high = 0, len(ranked)
        best = ""
        while low < high:
            middle = (low + high + 1) // 2
            text = render_outline(ranked[:middle], self._definitions)
            if count_tokens(text) <= budget_tokens:
                low, best = middle, text
            else:
                high = middle - 1
        return best

    def _pagerank(
        self, focus_files: set[str], focus_identifiers: set[str]
    ) -> tuple[np.ndarray, np.ndarray]:
        """File ranks, and the rank that flows along each edge in the final iteration."""
        count = len(self.paths)
        if count == 0:
            return np.zeros(0), np.zeros(0)
        uniform = np.full(count, 1.0 / count)
        focus = np.zeros(count, dtype=np.float64)
        for path in sorted(focus_files):
            if path in self._index:
                focus[self._index[path]] += 1.0
        for identifier in sorted(focus_identifiers):
            for path in self._definers.get(identifier, ()):
                focus[self._index[path]] += FOCUS_IDENTIFIER_WEIGHT
        if focus_identifiers:
            # "query" in a question points at query.py even when no definition is named so.
            wanted = {identifier.lower() for identifier in focus_identifiers}
            for path in self.paths:
                if PurePosixPath(path).stem.lower() in wanted:
                    focus[self._index[path]] += FOCUS_IDENTIFIER_WEIGHT
        if focus.sum() > 0:
            personal = (1.0 - FOCUS_TELEPORT_SHARE) * uniform
            personal += FOCUS_TELEPORT_SHARE * focus / focus.sum()
        else:
            personal = uniform

        weights = self._weights.copy()
        if focus_identifiers:
            focused = np.fromiter(
                (name in focus_identifiers for name in self._edge_names),
                dtype=bool,
                count=len(self._edge_names),
            )
            weights[focused] *= FOCUS_IDENTIFIER_WEIGHT
        out_weight = np.bincount(self._sources, weights=weights, minlength=count)
        dangling = out_weight == 0
        # Share of a source's rank that each of its edges carries.
        share = weights / np.where(out_weight > 0, out_weight, 1.0)[self._sources]

        ranks = personal.copy()
        for _ in range(_MAX_ITERATIONS):
            flow = ranks[self._sources] * share
            incoming = np.bincount(self._targets, weights=flow, minlength=count)
            # Files that reference nothing hand their rank back along the teleport vector.
            updated = DAMPING * (incoming + ranks[dangling].sum() * personal)
            updated += (1.0 - DAMPING) * personal
            converged = float(np.abs(updated - ranks).sum()) < _TOLERANCE
            ranks = updated
            if converged:
                break
        return ranks, ranks[self._sources] * share


def render_outline(
    ranked: list[RankedDefinition], definitions_by_path: dict[str, list[Definition]]
) -> str:
    """Group definitions under their files (best file first), in source order within a file."""
    by_path: dict[str, list[Definition]] = defaultdict(list)
    file_order: list[str] = []
    for item in ranked:
        if item.path not in by_path:
            file_order.append(item.path)
        by_path[item.path].append(item.definition)
    blocks: list[str] = []
    for path in file_order:
        chosen = by_path[path]
        # A member shown without its class reads as a free function: show the class line too.
        parents = {definition.parent for definition in chosen if definition.parent}
        shown = {(definition.name, definition.start_line) for definition in chosen}
        for candidate in definitions_by_path.get(path, ()):
            key = (candidate.name, candidate.start_line)
            if candidate.name in parents and candidate.parent is None and key not in shown:
                chosen.append(candidate)
                shown.add(key)
        lines = [f"{path}:"]
        for definition in sorted(chosen, key=lambda item: (item.start_line, item.name)):
            indent = "    " if definition.parent else "  "
            lines.extend(indent + line for line in definition.signature.splitlines())
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


def build_repo_map(files: Iterable[FileSymbols]) -> RepoMap:
    """Build the reference graph of the given files."""
    return RepoMap(files)
