"""Applying parsed edit blocks to file texts: tolerant, but never in the wrong place.

Each SEARCH/REPLACE block is placed on the current text of its file (later blocks see the
results of earlier ones) by the first step of this ladder that finds it:

1. ``exact``: the SEARCH lines occur, character for character, at exactly one place.
2. ``whitespace``: the same, ignoring trailing whitespace, CR/LF differences and a missing
   final newline.
3. ``indentation``: the same lines indented by a constant amount more or less (tabs for
   spaces too, when one tab stands for a fixed number of spaces throughout); REPLACE is
   re-indented by that amount. Steps 2 and 3 are also tried with the blank lines at the
   edges of SEARCH left out.
4. ``fuzzy``: windows of the file around lines that SEARCH shares with it (lines found
   more than ``FUZZY_COMMON_LINE`` times don't count) are aligned with SEARCH line by
   line, whitespace-insensitively (difflib). A window's *distance* is the number of line
   insertions and deletions that turn it into SEARCH, its *score*
   ``2 * matched / (SEARCH lines + window lines)``; blank lines weigh ``BLANK_WEIGHT``.
   The closest window needs a score of at least ``FUZZY_MIN_SCORE``, SEARCH needs
   ``FUZZY_MIN_LINES`` non-blank lines, and every window elsewhere in the file must be
   clearly farther: at least ``FUZZY_MIN_GAP`` lines more and ``FUZZY_GAP_FACTOR`` times
   the distance. Windows that overlap it and are as close but pair lines differently,
   and the alignments that move a gap across equal lines, are other readings of the same
   place: they must all give the same text.

A strict match (steps 1 to 3) is refused when another place holds the same lines with
one more among them (or one blank line fewer): SEARCH may have dropped that line, a slip
models make, and be meant for the other place (SEARCH up to ``TWIN_MAX_LINES`` lines).

A step that finds the text at two or more places refuses the block ("ambiguous"): a
looser step would only find more. Steps 2 to 4 apply the edit through the alignment of
SEARCH with the file: the line changes from SEARCH to REPLACE are carried over to the
matched file lines, and every file line the block does not change stays exactly as it
was. So a file line that SEARCH leaves out is kept, and a SEARCH line that is not in the
file is harmless unless REPLACE changes it, which is refused. Also refused are changes
whose place is not certain: lines added where the file has lines SEARCH does not show
(before or after them?), changed lines that occur twice in a stretch SEARCH skips, and
edits whose result depends on how repeated lines are paired: by difflib from the start or
from the end, or with a change slid across the equal lines at its edges (new lines that
end with the lines before them can go before those lines instead, and a file line that
SEARCH leaves out among them then lands on the other side of the new lines; up to
``MAX_READINGS`` readings are compared, more are refused). A REPLACE that ends with the
lines that follow SEARCH in the file (or starts with those before it) would write them
twice; it is refused too, as a SEARCH that stops a line early.

Trailing whitespace in REPLACE lines is dropped when the file has none, or when SEARCH
has trailing whitespace the file lacks (noise from the model).

The file keeps its own line ends (CRLF stays CRLF whatever the block used, and the other
way round) and its final-newline state. A block whose SEARCH equals its REPLACE is
applied as "no change" once its text is found. An empty SEARCH creates a file that does
not exist or is empty, and is refused on any other file. Files over ``MAX_FILE_BYTES``,
SEARCH text over ``MAX_SEARCH_CHARS`` and binary files are refused before any search.
Nothing depends on hash order or timing: the same input gives the same output.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import cached_property

from qweb.lib.edits.parse import DeleteFile, EditBlock, ParsedAnswer, RenameFile
from qweb.lib.edits.paths import UnsafePath, clean_path

MAX_FILE_BYTES = 5_000_000
MAX_SEARCH_CHARS = 200_000
FUZZY_MIN_SCORE = 0.7
FUZZY_MIN_GAP = 1.5
FUZZY_GAP_FACTOR = 2.0
# Fuzzy matching needs this many non-blank SEARCH lines: fewer leave too little to tell
# the right place from a look-alike.
FUZZY_MIN_LINES = 3
# Blank lines count for less in fuzzy scores: they say little about where SEARCH is.
BLANK_WEIGHT = 0.5
FUZZY_MAX_FILE_LINES = 200_000
FUZZY_MAX_SEARCH_LINES = 1_000
FUZZY_MAX_WINDOWS = 100
# ...and fewer for long SEARCH texts: windows times SEARCH lines stays under this.
FUZZY_MAX_WORK = 25_000
# Counting stops here: "found 1000 or more times" says enough.
MAX_COUNTED = 1000
# A line found more often than this in the file says nothing about where SEARCH belongs.
FUZZY_COMMON_LINE = 25

# Longer SEARCH texts are not checked for a twin that has one more line (see
# _hidden_twin): the check costs a search per line, and long near-copies are rare.
TWIN_MAX_LINES = 60

# Readings of one block (alignments with the file times diffs) compared before it is
# refused as too ambiguous to check: REPLACE that repeats a long run of equal lines can
# slide its change across many places.
MAX_READINGS = 1000

APPLIED = "applied"
REFUSED = "refused"


class BinaryFile:
    """What ``read_file`` returns for a file that is not text; blocks on it are refused."""

    def __repr__(self) -> str:
        return "BINARY_FILE"


BINARY_FILE = BinaryFile()


class NotAFile:
    """What ``read_file`` returns for a path that holds no file: a folder, a link, a submodule.

    Blocks are never applied there, and nothing is created through or in place of one:
    git would replace the folder (with everything in it) or the link by the new file.
    """

    def __init__(self, name: str, what: str) -> None:
        self.name = name
        self.what = what

    def __repr__(self) -> str:
        return self.name


FOLDER = NotAFile("FOLDER", "a folder")
SYMLINK = NotAFile("SYMLINK", "a symbolic link")
SUBMODULE = NotAFile("SUBMODULE", "a submodule")
FileText = str | BinaryFile | NotAFile | None


@dataclass(frozen=True)
class BlockOutcome:
    """The result of placing one SEARCH/REPLACE block on one text."""

    text: str | None  # the new text; None when refused
    how: str | None  # "exact" | "whitespace" | "indentation" | "fuzzy" | "created" | None
    confidence: float
    reason: str
    start_line: int | None = None  # 1-based lines of the text the block replaced
    end_line: int | None = None

    @property
    def status(self) -> str:
        return APPLIED if self.text is not None else REFUSED


@dataclass(frozen=True)
class BlockResult:
    index: int  # the operation's index in the answer; -1 for a parse problem
    path: str
    status: str  # "applied" | "refused"
    how: str | None  # "exact" ... "fuzzy" | "created" | "deleted" | "renamed" | None
    confidence: float  # 1.0 for exact/whitespace/indentation; the score for fuzzy; 0.0 refused
    reason: str  # why refused, or a short note; "" when exact
    start_line: int | None  # 1-based lines of the file text (before this block) it replaced
    end_line: int | None
    line: int = 0  # 1-based line of the answer where the operation starts


@dataclass
class EditOutcome:
    files: dict[str, str | None] = field(default_factory=dict)
    results: list[BlockResult] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)

    @property
    def applied(self) -> int:
        return sum(1 for result in self.results if result.status == APPLIED)

    @property
    def refused(self) -> int:
        return sum(1 for result in self.results if result.status == REFUSED)

    @property
    def success_rate(self) -> float:
        """Share of results applied; 0.0 for an answer with nothing to apply."""
        return self.applied / len(self.results) if self.results else 0.0


def _refused(reason: str, confidence: float = 0.0) -> BlockOutcome:
    return BlockOutcome(text=None, how=None, confidence=confidence, reason=reason)


# -- text as lines -----------------------------------------------------------------------


@dataclass
class _Lines:
    texts: list[str]  # the lines without their line ends
    ends: list[str]  # "\n", "\r\n" or "" (only the last line)
    eol: str  # the file's usual line end, for new lines
    final_newline: bool

    @cached_property
    def has_trailing_whitespace(self) -> bool:
        return any(line.endswith((" ", "\t")) for line in self.texts)


def _split(content: str) -> _Lines:
    pieces = content.split("\n")
    texts: list[str] = []
    ends: list[str] = []
    for piece in pieces[:-1]:
        if piece.endswith("\r"):
            texts.append(piece[:-1])
            ends.append("\r\n")
        else:
            texts.append(piece)
            ends.append("\n")
    if pieces[-1]:
        texts.append(pieces[-1])
        ends.append("")
    eol = "\r\n" if ends.count("\r\n") > ends.count("\n") else "\n"
    return _Lines(texts=texts, ends=ends, eol=eol, final_newline=not pieces[-1] and bool(texts))


def _block_lines(text: str) -> list[str]:
    lines = text.replace("\r\n", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _leading(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _norm(line: str) -> str:
    return " ".join(line.split())


# -- indentation -------------------------------------------------------------------------

Reindent = Callable[[str], str | None]


def _same(line: str) -> str | None:
    return line


def _reindenter(pairs: list[tuple[str, str]]) -> Reindent | None:
    """How to turn SEARCH indentation into the file's, from (file, search) indent pairs.

    None when no single rule fits every pair: then the lines are not the same code.
    """
    if all(file_ws == search_ws for file_ws, search_ws in pairs):
        return _same
    added = {
        file_ws[: len(file_ws) - len(search_ws)]
        for file_ws, search_ws in pairs
        if file_ws.endswith(search_ws)
    }
    if len(added) == 1 and all(f.endswith(s) for f, s in pairs):
        prefix = next(iter(added))
        return lambda line: prefix + line if line.strip() else ""
    removed = {
        search_ws[: len(search_ws) - len(file_ws)]
        for file_ws, search_ws in pairs
        if search_ws.endswith(file_ws)
    }
    if len(removed) == 1 and all(s.endswith(f) for f, s in pairs):
        prefix = next(iter(removed))

        def remove(line: str) -> str | None:
            if not line.strip():
                return ""
            return line[len(prefix) :] if line.startswith(prefix) else None

        return remove
    return _tab_reindenter(pairs)


def _tab_reindenter(pairs: list[tuple[str, str]]) -> Reindent | None:
    """Tabs in the file for spaces in SEARCH, or the other way round, at a fixed width."""
    file_tabs = all(set(f) <= {"\t"} for f, _ in pairs)
    file_spaces = all(set(f) <= {" "} for f, _ in pairs)
    search_tabs = all(set(s) <= {"\t"} for _, s in pairs)
    search_spaces = all(set(s) <= {" "} for _, s in pairs)
    if file_tabs and search_spaces:
        to_file, from_search = "\t", " "
    elif file_spaces and search_tabs:
        to_file, from_search = " ", "\t"
    else:
        return None
    fitting = []
    for width in (2, 4, 8):
        # Indentation in "levels": a tab, or `width` spaces.
        def levels(ws: str, width: int = width) -> int | None:
            if ws.startswith("\t") or not ws:
                return len(ws)
            return len(ws) // width if len(ws) % width == 0 else None

        shifts = set()
        for file_ws, search_ws in pairs:
            file_levels, search_levels = levels(file_ws), levels(search_ws)
            if file_levels is None or search_levels is None:
                break
            shifts.add(file_levels - search_levels)
        else:
            if len(shifts) == 1:
                fitting.append((width, shifts.pop()))
    # A tab is most likely one level of the file's indentation: prefer the width that
    # needs no shift. Several widths left would re-indent REPLACE differently.
    unshifted = [fit for fit in fitting if fit[1] == 0]
    if len(unshifted) == 1:
        fitting = unshifted
    if len(fitting) != 1:
        return None
    width, shift = fitting[0]
    unit = "\t" if to_file == "\t" else " " * width

    def reindent(line: str) -> str | None:
        if not line.strip():
            return ""
        ws = _leading(line)
        if set(ws) - {from_search}:
            return None
        count = len(ws) if from_search == "\t" else (len(ws) // width)
        if from_search == " " and len(ws) % width:
            return None
        if count + shift < 0:
            return None
        return unit * (count + shift) + line[len(ws) :]

    return reindent


# -- finding SEARCH ----------------------------------------------------------------------


@dataclass
class _Match:
    how: str
    fmap: list[int | None]  # SEARCH line index -> file line index, None where not in file
    reindent: Reindent
    confidence: float
    note: str
    alternatives: list[_Match | str] = field(default_factory=list)


def _joined(keys: list[str]) -> str:
    return "\n" + "\n".join(keys) + "\n"


def _find_runs(keys: list[str], wanted: list[str], haystack: str | None = None) -> list[int]:
    """Start indexes where ``wanted`` occurs as consecutive items of ``keys``.

    ``haystack`` is ``_joined(keys)`` when the caller has it already.
    """
    # str.find on the joined lines is linear where comparing slices line by line is not
    # (a file of one line repeated, with SEARCH the same line repeated and one other).
    if haystack is None:
        haystack = _joined(keys)
    needle = _joined(wanted)
    starts = []
    line = 0
    counted_to = 0
    at = haystack.find(needle)
    while at != -1:
        line += haystack.count("\n", counted_to, at)
        counted_to = at
        starts.append(line)
        if len(starts) >= MAX_COUNTED:
            break
        at = haystack.find(needle, at + 1)
    return starts


def _times(starts: list[int]) -> str:
    return f"{len(starts)} or more" if len(starts) >= MAX_COUNTED else str(len(starts))


def _lines_list(starts: list[int]) -> str:
    shown = ", ".join(str(p + 1) for p in starts[:5])
    return shown + (", …" if len(starts) > 5 else "")


class _Ambiguous(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _strict_match(
    file: _Lines, search: list[str], offset: int, keep: list[int | None]
) -> _Match | None:
    """Steps 1 to 3 for the SEARCH lines ``search``, which are ``keep``'s non-None part."""
    n_search = len(keep)

    def identity_map(start: int) -> list[int | None]:
        return [None if j is None else start + j - offset for j in keep]

    if offset == 0 and len(search) == n_search:
        starts = _find_runs(file.texts, search)
        if len(starts) > 1:
            raise _Ambiguous(
                f"ambiguous: found {_times(starts)} times (lines {_lines_list(starts)})"
            )
        if starts:
            return _Match("exact", identity_map(starts[0]), _same, 1.0, "")
    stripped = [line.rstrip() for line in file.texts]
    wanted = [line.rstrip() for line in search]
    starts = _find_runs(stripped, wanted)
    if len(starts) > 1:
        raise _Ambiguous(
            f"ambiguous: found {_times(starts)} times ignoring trailing whitespace "
            f"(lines {_lines_list(starts)})"
        )
    if starts:
        return _Match("whitespace", identity_map(starts[0]), _same, 1.0, "")
    bare = [line.strip() for line in stripped]
    wanted_bare = [line.strip() for line in wanted]
    found: list[tuple[int, Reindent]] = []
    for start in _find_runs(bare, wanted_bare):
        pairs = [
            (_leading(stripped[start + j]), _leading(wanted[j]))
            for j in range(len(wanted))
            if wanted_bare[j]
        ]
        reindent = _reindenter(pairs)
        if reindent is not None:
            found.append((start, reindent))
    if len(found) > 1:
        starts = [start for start, _ in found]
        raise _Ambiguous(
            f"ambiguous: found {_times(starts)} times with different indentation "
            f"(lines {_lines_list(starts)})"
        )
    if found:
        start, reindent = found[0]
        return _Match("indentation", identity_map(start), reindent, 1.0, "")
    return None


def _locate(file: _Lines, search: list[str]) -> _Match | str:
    """Place SEARCH in the file, or say why it cannot be placed."""
    n = len(search)
    try:
        match = _strict_match(file, search, 0, [*range(n)])
        if match is None:
            first = next(j for j in range(n) if search[j].strip())
            last = max(j for j in range(n) if search[j].strip())
            if first > 0 or last < n - 1:
                keep: list[int | None] = [j if first <= j <= last else None for j in range(n)]
                match = _strict_match(file, search[first : last + 1], first, keep)
                if match is not None:
                    match.note = "blank lines at the edges of SEARCH are not in the file"
    except _Ambiguous as ambiguous:
        return ambiguous.reason
    if match is None:
        return _fuzzy_locate(file, search)
    twin = _hidden_twin(file, search, match)
    return twin if twin is not None else match


def _hidden_twin(file: _Lines, search: list[str], match: _Match) -> str | None:
    """Why a strict match is not safe to use, or None.

    When another place holds the lines of SEARCH with one more line among them (or one
    blank line fewer), SEARCH may have dropped that line, a slip models make, and be
    meant for the other place. Whitespace and indentation do not count here.
    """
    kept = [j for j, p in enumerate(match.fmap) if p is not None]
    wanted = [_norm(line) for line in search[kept[0] : kept[-1] + 1]]
    n = len(wanted)
    if n < 2 or n > TWIN_MAX_LINES:
        return None
    first = match.fmap[kept[0]]
    assert first is not None
    last = first + n - 1
    keys = [_norm(line) for line in file.texts]
    haystack = _joined(keys)
    twins: list[int] = []
    for k in range(1, n):
        # One more line between wanted[:k] and wanted[k:]; look for the longer part.
        head, tail = wanted[:k], wanted[k:]
        if len(head) >= len(tail):
            starts = _find_runs(keys, head, haystack)
        else:
            starts = [q - k - 1 for q in _find_runs(keys, tail, haystack) if q - k - 1 >= 0]
        twins += [
            p for p in starts if keys[p : p + k] == head and keys[p + k + 1 : p + n + 1] == tail
        ]
        if k < n - 1 and not wanted[k]:
            twins += _find_runs(keys, wanted[:k] + wanted[k + 1 :], haystack)
    elsewhere = sorted({p for p in twins if p + n < first or p > last})
    if elsewhere:
        return (
            f"ambiguous: SEARCH matches at line {first + 1}, but line {elsewhere[0] + 1} "
            f"holds the same lines with one more among them, which SEARCH may have dropped"
        )
    return None


def _weight(norm_line: str) -> float:
    return 1.0 if norm_line else BLANK_WEIGHT


@dataclass
class _Candidate:
    score: float
    distance: float  # line edits (blank lines weighted) that turn the window into SEARCH
    fmap: list[int | None]
    first: int
    last: int


def _fuzzy_candidates(file: _Lines, search: list[str]) -> list[_Candidate] | str:
    """Windows of the file aligned with SEARCH, closest first; or why there are none."""
    search_norm = [_norm(line) for line in search]
    non_blank = [j for j, line in enumerate(search_norm) if line]
    if len(file.texts) > FUZZY_MAX_FILE_LINES or len(non_blank) > FUZZY_MAX_SEARCH_LINES:
        return "SEARCH not found in the file (too large for a fuzzy match)"
    file_norm = [_norm(line) for line in file.texts]
    wanted = set(search_norm) - {""}
    positions: dict[str, list[int]] = {}
    for p, line in enumerate(file_norm):
        if line in wanted:
            positions.setdefault(line, []).append(p)
    n = len(search)
    slack = 2 + n // 8
    search_weight = sum(_weight(line) for line in search_norm)
    votes: dict[int, int] = {}
    for j in non_blank:
        found = positions.get(search_norm[j], [])
        if len(found) > FUZZY_COMMON_LINE:
            continue
        for p in found:
            votes[p - j] = votes.get(p - j, 0) + 1
    if not votes:
        return "SEARCH not found in the file (no line of it occurs in the file)"
    chosen: list[int] = []
    for start, _ in sorted(votes.items(), key=lambda item: (-item[1], item[0])):
        at = bisect.bisect_left(chosen, start)
        near = (at < len(chosen) and chosen[at] - start <= slack // 2) or (
            at > 0 and start - chosen[at - 1] <= slack // 2
        )
        if not near:
            chosen.insert(at, start)
            if len(chosen) >= min(FUZZY_MAX_WINDOWS, max(10, FUZZY_MAX_WORK // n)):
                break
    # Each window is aligned from the front and from the back: where SEARCH skips one of
    # several equal lines, the two put the gap at either end of them, and both readings
    # are weighed (see _fuzzy_locate).
    forward = SequenceMatcher(None, autojunk=False)
    forward.set_seq2(search_norm)
    backward = SequenceMatcher(None, autojunk=False)
    backward.set_seq2(search_norm[::-1])
    candidates: dict[tuple[int | None, ...], _Candidate] = {}
    for start in chosen:
        lo = max(0, start - slack)
        hi = min(len(file_norm), start + n + slack)
        window = file_norm[lo:hi]
        forward.set_seq1(window)
        backward.set_seq1(window[::-1])
        for reverse, matcher in ((False, forward), (True, backward)):
            fmap: list[int | None] = [None] * n
            for a, b, size in matcher.get_matching_blocks():
                for k in range(size):
                    if reverse:
                        fmap[n - 1 - (b + k)] = hi - 1 - (a + k)
                    else:
                        fmap[b + k] = lo + a + k
            if all(fmap[j] is None for j in non_blank):
                continue
            # Blank lines count where they pair up, at the edges too.
            aligned = [p for p in fmap if p is not None]
            first, last = min(aligned), max(aligned)
            matched = sum(_weight(search_norm[j]) for j in range(n) if fmap[j] is not None)
            span = sum(_weight(file_norm[p]) for p in range(first, last + 1))
            score = 2 * matched / (search_weight + span)
            distance = search_weight + span - 2 * matched
            key = tuple(fmap)
            if key not in candidates:
                candidates[key] = _Candidate(score, distance, fmap, first, last)
    ranked = sorted(candidates.values(), key=lambda c: (c.distance, -c.score, c.first, c.last))
    if not ranked:
        return "SEARCH not found in the file (no line of it occurs in the file)"
    return ranked


def _fuzzy_locate(file: _Lines, search: list[str]) -> _Match | str:
    if sum(1 for line in search if line.strip()) < FUZZY_MIN_LINES:
        return "SEARCH not found in the file (too short for a fuzzy match)"
    ranked = _fuzzy_candidates(file, search)
    if isinstance(ranked, str):
        return ranked
    best = ranked[0]
    where = f"line {best.first + 1}"
    if best.score < FUZZY_MIN_SCORE:
        return (
            f"SEARCH not found in the file: the closest text, at {where}, scores "
            f"{best.score:.2f} (needs {FUZZY_MIN_SCORE})"
        )
    # Another place must need clearly more line edits to become SEARCH: at least
    # FUZZY_MIN_GAP more, and FUZZY_GAP_FACTOR times as many.
    close = max(best.distance + FUZZY_MIN_GAP, best.distance * FUZZY_GAP_FACTOR)
    elsewhere = next((c for c in ranked[1:] if c.last < best.first or c.first > best.last), None)
    if elsewhere is not None and elsewhere.distance < close:
        return (
            f"ambiguous: similar text at {where} ({best.distance:g} lines differ) and at "
            f"line {elsewhere.first + 1} ({elsewhere.distance:g} lines differ)"
        )
    # Overlapping windows that score about as well and pair some SEARCH line with another
    # file line are other readings of the same place (a window that merely sees less of
    # it pairs a subset of the same lines, and is no rival).
    rivals = [
        c
        for c in ranked[1:]
        if c.distance < close
        and any(p is not None and p != q for p, q in zip(c.fmap, best.fmap, strict=True))
    ]
    match = _fuzzy_match(file, search, best)
    if isinstance(match, str):
        return match
    if elsewhere is not None:
        match.note += f"; next best elsewhere: line {elsewhere.first + 1}, {elsewhere.score:.2f}"
    # The caller applies the block through each reading, and refuses unless all of them
    # give the same text.
    search_norm = [_norm(line) for line in search]
    file_norm = [_norm(line) for line in file.texts]
    slid = [
        _Candidate(best.score, best.distance, fmap, best.first, best.last)
        for fmap in _slid_alignments(best.fmap, search_norm, file_norm)
    ]
    match.alternatives = [_fuzzy_match(file, search, other) for other in [*rivals, *slid]]
    return match


def _slid_alignments(
    fmap: list[int | None], search: list[str], file: list[str]
) -> list[list[int | None]]:
    """Other alignments as good as ``fmap``, with a gap moved across equal lines.

    SEARCH ``A P P P ]`` on the file ``A x P P P P ]`` pairs the P lines either after the
    skipped ``x`` or before the extra ``P``; the same holds for SEARCH lines that the file
    lacks. ``search`` and ``file`` are normalised lines.
    """
    n = len(fmap)
    pairs = [(j, p) for j, p in enumerate(fmap) if p is not None]
    slid: list[list[int | None]] = []
    for (j1, f1), (j2, f2) in itertools.pairwise(pairs):
        if j2 == j1 + 1 and f2 > f1 + 1:
            # File lines f1+1 .. f2-1 are not in SEARCH: the lines after them may pair
            # earlier, the lines before them later.
            width = f2 - f1 - 1
            right = list(fmap)
            i = 0
            while j2 + i < n and fmap[j2 + i] == f2 + i and file[f1 + 1 + i] == search[j2 + i]:
                right[j2 + i] = f1 + 1 + i
                i += 1
            if i:
                slid.append(right)
            left = list(fmap)
            i = 0
            while j1 - i >= 0 and fmap[j1 - i] == f1 - i and file[f2 - 1 - i] == search[j1 - i]:
                left[j1 - i] = f1 - i + width
                i += 1
            if i:
                slid.append(left)
        elif f2 == f1 + 1 and j2 > j1 + 1:
            # SEARCH lines j1+1 .. j2-1 are not in the file: the ones that equal their
            # neighbours across the gap may be the ones that are.
            width = j2 - j1 - 1
            right = list(fmap)
            i = 0
            while j2 + i < n and fmap[j2 + i] == f2 + i and search[j1 + 1 + i] == search[j2 + i]:
                right[j1 + 1 + i] = f2 + i
                right[j2 + i] = None
                i += 1
            if i:
                slid.append(right)
            left = list(fmap)
            i = 0
            while j1 - i >= 0 and fmap[j1 - i] == f1 - i and search[j2 - 1 - i] == search[j1 - i]:
                left[j2 - 1 - i] = f1 - i
                left[j1 - i] = None
                i += 1
            if i:
                slid.append(left)
    return slid


def _fuzzy_match(file: _Lines, search: list[str], candidate: _Candidate) -> _Match | str:
    pairs = [
        (_leading(file.texts[p]), _leading(search[j]))
        for j, p in enumerate(candidate.fmap)
        if p is not None and search[j].strip()
    ]
    reindent = _reindenter(pairs)
    where = f"line {candidate.first + 1}"
    if reindent is None:
        return (
            f"SEARCH not found in the file: the closest text, at {where} (score "
            f"{candidate.score:.2f}), is indented differently line by line"
        )
    return _Match(
        "fuzzy",
        candidate.fmap,
        reindent,
        round(candidate.score, 3),
        f"fuzzy match at {where}, score {candidate.score:.2f}",
    )


# -- carrying the change over ------------------------------------------------------------


@dataclass(frozen=True)
class _Change:
    start: int  # file lines [start, end) are replaced by `lines`
    end: int
    lines: list[str]


Opcodes = list[tuple[str, int, int, int, int]]


def _line_diff(a: list[str], b: list[str], *, backwards: bool) -> Opcodes:
    """difflib's opcodes from ``a`` to ``b``; ``backwards`` pairs equal lines from the end.

    Between repeated lines the two choose differently (which of two ``pass`` lines is
    the deleted one), which only matters once the change lands on a file that has lines
    between them.
    """
    if not backwards:
        return SequenceMatcher(None, a, b, autojunk=False).get_opcodes()
    n, m = len(a), len(b)
    opcodes = SequenceMatcher(None, a[::-1], b[::-1], autojunk=False).get_opcodes()
    return [(tag, n - i2, n - i1, m - j2, m - j1) for tag, i1, i2, j1, j2 in reversed(opcodes)]


def _slid_diffs(
    opcodes: Opcodes, a: list[str], b: list[str]
) -> list[tuple[Opcodes, tuple[int, int]]]:
    """The diff with one change slid across the equal lines at its edges, as good a diff.

    ``x ) ⏎ B`` becoming ``x ) ⏎ new ) ⏎ B`` adds ``⏎ new )`` after the first ``)``, or
    ``) ⏎ new`` after ``x``, or ``new ) ⏎`` after the blank line: added (or removed) lines
    that end with the lines before them, or start with the lines after them, can go on
    either side of those. Each comes with the lines of ``a`` the change slid across.
    """
    slid: list[tuple[Opcodes, tuple[int, int]]] = []
    for i, (tag, s1, s2, r1, r2) in enumerate(opcodes):
        if tag == "equal":
            continue
        # A slide may use up the equal lines next to the change only at an edge of the
        # diff: elsewhere the change would run into the next one.
        if i > 0 and opcodes[i - 1][0] == "equal":
            room = opcodes[i - 1][2] - opcodes[i - 1][1] - (1 if i > 1 else 0)
            d = 0
            while (
                d < room
                and (s1 == s2 or a[s2 - 1 - d] == a[s1 - 1 - d])
                and (r1 == r2 or b[r2 - 1 - d] == b[r1 - 1 - d])
            ):
                d += 1
                slid.append((_slide(opcodes, i, -d), (s1 - d, s2)))
        if i + 1 < len(opcodes) and opcodes[i + 1][0] == "equal":
            room = opcodes[i + 1][2] - opcodes[i + 1][1] - (1 if i + 2 < len(opcodes) else 0)
            d = 0
            while (
                d < room
                and (s1 == s2 or a[s1 + d] == a[s2 + d])
                and (r1 == r2 or b[r1 + d] == b[r2 + d])
            ):
                d += 1
                slid.append((_slide(opcodes, i, d), (s1, s2 + d)))
    return slid


def _slide(opcodes: Opcodes, i: int, d: int) -> Opcodes:
    """``opcodes`` with change ``i`` moved ``d`` lines (back when negative) on both sides."""
    tag, s1, s2, r1, r2 = opcodes[i]
    lo = i - 1 if i > 0 and opcodes[i - 1][0] == "equal" else i
    hi = i + 1 if i + 1 < len(opcodes) and opcodes[i + 1][0] == "equal" else i
    pieces = [
        ("equal", opcodes[lo][1], s1 + d, opcodes[lo][3], r1 + d),
        (tag, s1 + d, s2 + d, r1 + d, r2 + d),
        ("equal", s2 + d, opcodes[hi][2], r2 + d, opcodes[hi][4]),
    ]
    kept = [piece for piece in pieces if piece[0] != "equal" or piece[1] < piece[2]]
    return [*opcodes[:lo], *kept, *opcodes[hi + 1 :]]


def _changes(
    file: _Lines,
    search: list[str],
    replace: list[str],
    match: _Match,
    diff: Opcodes,
) -> list[_Change] | str:
    """The SEARCH to REPLACE line changes of ``diff``, placed on the file through ``match``."""
    noisy = _noisy_trailing_whitespace(file, search, match.fmap)
    placer = _Placer(file, search, match)
    changes: list[_Change] = []
    for tag, s1, s2, r1, r2 in diff:
        if tag == "equal":
            continue
        new_lines = _new_lines(replace, r1, r2, match, noisy)
        if isinstance(new_lines, str):
            return new_lines
        change = placer.replaced(s1, s2, new_lines) if s1 < s2 else placer.added(s1, new_lines)
        if isinstance(change, str):
            return change
        changes.append(change)
    previous_end = -1
    for change in changes:
        if change.start < previous_end:
            return f"the changes overlap once placed in the file; {match.note}"
        previous_end = change.end
    duplicated = _duplicated_edge(file, changes, match)
    if duplicated:
        return duplicated
    return changes


def _noisy_trailing_whitespace(file: _Lines, search: list[str], fmap: list[int | None]) -> bool:
    """Whether to strip trailing whitespace from REPLACE lines."""
    # Trailing whitespace in REPLACE is noise from the model when SEARCH has some that the
    # file lacks, or when the file has none anywhere.
    return not file.has_trailing_whitespace or any(
        p is not None
        and search[j].endswith((" ", "\t"))
        and not file.texts[p].endswith((" ", "\t"))
        for j, p in enumerate(fmap)
    )


def _new_lines(replace: list[str], r1: int, r2: int, match: _Match, noisy: bool) -> list[str] | str:
    """REPLACE lines ``r1:r2`` re-indented for the file, or why they cannot be."""
    new_lines = []
    for r in range(r1, r2):
        line = match.reindent(replace[r])
        if line is None:
            return (
                f"REPLACE line {r + 1} cannot be re-indented to the file's indentation "
                f"({match.how} match)"
            )
        new_lines.append(line.rstrip(" \t") if noisy else line)
    return new_lines


class _Placer:
    """Places the changes of one SEARCH/REPLACE block on the file through its match."""

    def __init__(self, file: _Lines, search: list[str], match: _Match) -> None:
        self.file = file
        self.search = search
        self.match = match
        self.fmap = match.fmap
        self._file_norm_cache: dict[int, str] = {}

    def file_norm(self, p: int) -> str:
        if p not in self._file_norm_cache:
            self._file_norm_cache[p] = _norm(self.file.texts[p])
        return self._file_norm_cache[p]

    def aligned_before(self, j: int) -> tuple[int, int] | None:
        for k in range(j - 1, -1, -1):
            p = self.fmap[k]
            if p is not None:
                return k, p
        return None

    def aligned_from(self, j: int) -> tuple[int, int] | None:
        for k in range(j, len(self.fmap)):
            p = self.fmap[k]
            if p is not None:
                return k, p
        return None

    def replaced(self, s1: int, s2: int, new_lines: list[str]) -> _Change | str:
        """The change for SEARCH lines ``s1:s2`` becoming ``new_lines``, or why it is refused."""
        search, match, fmap = self.search, self.match, self.fmap
        n = len(search)
        mapped = fmap[s1:s2]
        missing = next((s1 + k for k, p in enumerate(mapped) if p is None), None)
        if missing is not None:
            return (
                f"SEARCH line {missing + 1} ({search[missing].strip()[:60]!r}) is not in "
                f"the file and REPLACE changes it; {match.note}"
            )
        first = mapped[0]
        assert first is not None
        if mapped != list(range(first, first + len(mapped))):
            return (
                f"the file has lines inside SEARCH lines {s1 + 1}-{s2} that SEARCH does "
                f"not show, and REPLACE changes them; {match.note}"
            )
        # The changed lines must sit at the one place the surrounding SEARCH lines
        # allow: the same lines again in an unshown gap would be just as good a fit.
        before = self.aligned_before(s1)
        after = self.aligned_from(s2)
        lo = before[1] + 1 if before else first
        hi = after[1] if after else first + len(mapped)
        wanted = [self.file_norm(p) for p in range(first, first + len(mapped))]
        repeats = sum(
            1
            for p in range(lo, hi - len(wanted) + 1)
            if all(self.file_norm(p + k) == wanted[k] for k in range(len(wanted)))
        )
        if repeats > 1:
            return (
                f"the lines that REPLACE changes (from SEARCH line {s1 + 1}) occur more "
                f"than once where SEARCH places them; {match.note}"
            )
        # A changed line equal to its neighbour across a gap could as well be that
        # neighbour ("delete one of two identical lines"): diffs pick either.
        last_changed = first + len(mapped) - 1
        gap_after = s2 < n and fmap[s2] != last_changed + 1
        gap_before = s1 > 0 and fmap[s1 - 1] != first - 1
        if (gap_after and _norm(search[s2]) == _norm(search[s1])) or (
            gap_before and _norm(search[s1 - 1]) == _norm(search[s2 - 1])
        ):
            return (
                f"the lines that REPLACE changes (from SEARCH line {s1 + 1}) repeat next "
                f"to lines of the file that SEARCH does not show; {match.note}"
            )
        return _Change(first, first + len(mapped), new_lines)

    def added(self, s1: int, new_lines: list[str]) -> _Change | str:
        """The change for ``new_lines`` added at SEARCH line ``s1``, or why it is refused."""
        search, texts = self.search, self.file.texts
        n = len(search)
        # Added lines go between two SEARCH lines that are neighbours in the file, or
        # at an end of SEARCH right next to a line that is in the file, beyond which
        # SEARCH has only made-up lines. Anywhere else the file has lines that SEARCH
        # does not show, or SEARCH shows lines that may be further on in the file,
        # next to the new lines: they could belong on either side of them.
        before = self.aligned_before(s1)
        after = self.aligned_from(s1)
        if before is not None and after is not None and after[1] == before[1] + 1:
            at = after[1]
        elif (
            before is not None
            and after is None
            and before[0] == s1 - 1
            and _made_up(search[s1:], texts[before[1] + 1 : before[1] + n - s1 + 4])
        ):
            at = before[1] + 1
        elif (
            after is not None
            and before is None
            and after[0] == s1
            and _made_up(search[:s1], texts[max(0, after[1] - s1 - 3) : after[1]])
        ):
            at = after[1]
        else:
            return (
                f"REPLACE adds lines at SEARCH line {s1 + 1}, where the file has lines "
                f"that SEARCH does not show or SEARCH has lines the file lacks; "
                f"{self.match.note}"
            )
        return _Change(at, at, new_lines)


def _made_up(search_lines: list[str], nearby: list[str]) -> bool:
    """Whether SEARCH lines look invented: none blank, none like a file line nearby."""
    for line in search_lines:
        if not line.strip():
            return False
        for other in nearby:
            if SequenceMatcher(None, _norm(line), _norm(other), autojunk=False).ratio() >= 0.6:
                return False
    return True


def _duplicated_edge(file: _Lines, changes: list[_Change], match: _Match) -> str | None:
    """Why the block seems to quote SEARCH short, or None.

    REPLACE that ends with the very lines that follow SEARCH in the file (or starts with
    the lines before it) would write them twice: SEARCH most likely stops a line too early
    (or starts too late), the way a model that loses count of lines writes it.
    """
    aligned = [p for p in match.fmap if p is not None]
    first, last = min(aligned), max(aligned)

    def repeats(new_lines: list[str], file_lines: list[str]) -> bool:
        pairs = list(zip(new_lines, file_lines, strict=False))
        return (
            len(pairs) == len(new_lines)
            and all(_norm(a) == _norm(b) for a, b in pairs)
            and any(_norm(a) for a, _ in pairs)
        )

    for change in changes:
        if change.end == last + 1 and change.lines:
            for m in range(len(change.lines), 0, -1):
                tail = change.lines[-m:]
                if repeats(tail, file.texts[last + 1 : last + 1 + m]):
                    return (
                        f"REPLACE ends with {m} line(s) that already follow SEARCH in the "
                        f"file (from line {last + 2}): SEARCH probably stops too early"
                    )
        if change.start == first and change.lines:
            for m in range(len(change.lines), 0, -1):
                head = change.lines[:m]
                if first - m >= 0 and repeats(head, file.texts[first - m : first]):
                    return (
                        f"REPLACE starts with {m} line(s) that already come before SEARCH "
                        f"in the file (from line {first - m + 1}): SEARCH probably starts "
                        f"too late"
                    )
    return None


def _render(file: _Lines, changes: list[_Change]) -> str:
    texts: list[str] = []
    ends: list[str] = []
    at = 0
    for change in changes:
        texts.extend(file.texts[at : change.start])
        ends.extend(file.ends[at : change.start])
        texts.extend(change.lines)
        ends.extend([file.eol] * len(change.lines))
        at = change.end
    texts.extend(file.texts[at:])
    ends.extend(file.ends[at:])
    if not texts:
        return ""
    for k in range(len(ends) - 1):
        if not ends[k]:
            ends[k] = file.eol
    ends[-1] = (ends[-1] or file.eol) if file.final_newline else ""
    return "".join(text + end for text, end in zip(texts, ends, strict=True))


def _rendered_stretch(
    file: _Lines, changes: list[_Change], lo: int, hi: int
) -> list[tuple[str, str]] | str:
    """File lines ``lo`` to ``hi`` with ``changes`` made, as (text, line end) pairs.

    The whole text, rendered, when a change reaches outside that stretch.
    """
    if any(change.start < lo or change.end > hi for change in changes):
        return _render(file, changes)
    pairs: list[tuple[str, str]] = []
    at = lo
    for change in changes:
        pairs += zip(file.texts[at : change.start], file.ends[at : change.start], strict=True)
        pairs += [(line, file.eol) for line in change.lines]
        at = change.end
    pairs += zip(file.texts[at:hi], file.ends[at:hi], strict=True)
    return pairs


# -- one block ---------------------------------------------------------------------------


def _size_problem(content: str, search: str) -> str | None:
    if len(content) > MAX_FILE_BYTES or (
        len(content) * 4 > MAX_FILE_BYTES
        and len(content.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES
    ):
        return f"file too large: over {MAX_FILE_BYTES} bytes"
    if len(search) > MAX_SEARCH_CHARS:
        return f"SEARCH too large: over {MAX_SEARCH_CHARS} characters"
    return None


def apply_block(content: str, search: str, replace: str) -> BlockOutcome:
    """Place one SEARCH/REPLACE block on ``content``; never guesses between two places."""
    problem = _size_problem(content, search)
    if problem:
        return _refused(problem)
    if "\x00" in content:
        return _refused("binary file")
    if not search.strip():
        if content.strip():
            return _refused("SEARCH is empty: only new files may be created this way")
        return BlockOutcome(
            text=replace.replace("\r\n", "\n"),
            how="created",
            confidence=1.0,
            reason="",
            start_line=1 if replace else None,
            end_line=len(_block_lines(replace)) if replace else None,
        )
    file = _split(content)
    search_lines = _block_lines(search)
    replace_lines = _block_lines(replace)
    match = _locate(file, search_lines)
    if isinstance(match, str):
        return _refused(match)
    # Trailing whitespace does not make lines differ, except for an exact match.
    search_keys, replace_keys = (
        (search_lines, replace_lines)
        if match.how == "exact"
        else ([x.rstrip() for x in search_lines], [x.rstrip() for x in replace_lines])
    )
    diff = _line_diff(search_keys, replace_keys, backwards=False)
    changes = _changes(file, search_lines, replace_lines, match, diff)
    if isinstance(changes, str):
        return _refused(changes)
    text = _render(file, changes)
    differs = _readings_differ(
        file, search_lines, replace_lines, match, (search_keys, replace_keys, diff), changes
    )
    if differs:
        return _refused(differs)
    aligned = [p for p in match.fmap if p is not None]
    note = match.note
    if search_lines == replace_lines:
        note = "no change: SEARCH equals REPLACE" + (f"; {note}" if note else "")
    return BlockOutcome(
        text=text,
        how=match.how,
        confidence=match.confidence,
        reason=note,
        start_line=min(aligned) + 1,
        end_line=max(aligned) + 1,
    )


def _readings_differ(
    file: _Lines,
    search: list[str],
    replace: list[str],
    match: _Match,
    diffed: tuple[list[str], list[str], Opcodes],
    changes: list[_Change],
) -> str | None:
    """Why the block is ambiguous, or None when every reading of it gives the same text.

    Where SEARCH and the file differ, the readings are the other alignments of SEARCH with
    the file, each with every diff from SEARCH to REPLACE as short as difflib's: equal
    lines paired from the end, and changes slid across repeated lines at their edges. A
    line SEARCH leaves out lands on one side of the change or the other. ``diffed`` holds
    the SEARCH and REPLACE lines as diffed and difflib's diff, which gave ``changes``.
    """
    search_keys, replace_keys, forward = diffed
    readings = [match, *match.alternatives]
    diffs: list[tuple[Opcodes, tuple[int, int] | None]] = [(forward, None)]
    # Without gaps in the alignment every diff gives the same text.
    if any(isinstance(reading, str) or _has_gaps(reading.fmap) for reading in readings):
        backward = _line_diff(search_keys, replace_keys, backwards=True)
        diffs.append((backward, None))
        diffs += _slid_diffs(forward, search_keys, replace_keys)
        diffs += _slid_diffs(backward, search_keys, replace_keys)
    seen = {(0, tuple(forward))}
    # Every reading changes lines between the first and last file lines that SEARCH is
    # aligned with (or adds lines just after them): comparing that stretch is enough.
    aligned = [
        p
        for reading in readings
        if not isinstance(reading, str)
        for p in reading.fmap
        if p is not None
    ]
    lo, hi = min(aligned), max(aligned) + 1
    expected = _rendered_stretch(file, changes, lo, hi)
    for at, reading in enumerate(readings):
        if isinstance(reading, str):
            return _ambiguous_reading(match)
        gaps = _has_gaps(reading.fmap)
        for diff, slid in diffs:
            key = (at, tuple(diff))
            if key in seen or (diff is not forward and not gaps):
                continue
            seen.add(key)
            if len(seen) > MAX_READINGS:
                return (
                    f"ambiguous: the block can be read in too many ways near line "
                    f"{_first_line(match) + 1} (REPLACE repeats many of its lines)"
                )
            other = _changes(file, search, replace, reading, diff)
            if isinstance(other, str) or _rendered_stretch(file, other, lo, hi) != expected:
                if slid is None:
                    return _ambiguous_reading(match)
                return _ambiguous_landing(match, slid)
    return None


def _ambiguous_reading(match: _Match) -> str:
    return (
        f"ambiguous: the block can be read in more than one way near line "
        f"{_first_line(match) + 1}, and the readings change the file differently"
    )


def _ambiguous_landing(match: _Match, span: tuple[int, int]) -> str:
    """The reason for a change that lands elsewhere once slid across SEARCH lines ``span``."""
    lo, hi = span
    fmap = match.fmap
    near = [p for p in fmap[max(0, lo - 1) : hi + 1] if p is not None]
    shown = set(fmap)
    unshown = [p for p in range(min(near), max(near)) if p not in shown] if near else []
    if unshown:
        where = f"line {unshown[0] + 1}"
        if len(unshown) > 1:
            where = f"lines {unshown[0] + 1}-{unshown[-1] + 1}"
        return (
            f"ambiguous: REPLACE repeats lines at the edges of what it changes, so the "
            f"change could land in two places relative to {where}, which SEARCH leaves out"
        )
    return (
        f"ambiguous: REPLACE repeats lines at the edges of what it changes, so the change "
        f"could land in two places near line {(near[0] if near else _first_line(match)) + 1}"
    )


def _has_gaps(fmap: list[int | None]) -> bool:
    first = fmap[0]
    return first is None or fmap != list(range(first, first + len(fmap)))


def _first_line(match: _Match) -> int:
    return min(p for p in match.fmap if p is not None)


# -- a whole answer ----------------------------------------------------------------------


class _Files:
    """The files of one answer as operations change them, read from the base on demand."""

    def __init__(
        self, read_file: Callable[[str], FileText], writable: Callable[[str], str | None]
    ) -> None:
        self.read_file = read_file
        self.writable = writable
        self.base: dict[str, FileText] = {}
        self.current: dict[str, str | None] = {}
        self.gone: dict[str, str] = {}  # path -> why blocks on it are refused
        self.renamed: dict[str, str] = {}

    def text(self, path: str) -> FileText:
        if path in self.current:
            return self.current[path]
        if path not in self.base:
            found = self.read_file(path)
            if isinstance(found, str) and "\x00" in found:
                found = BINARY_FILE
            self.base[path] = found
        return self.base[path]

    def write(self, path: str, text: str | None) -> None:
        self.text(path)  # remember the base, to tell later whether the file existed
        self.current[path] = text

    def creation_problem(self, path: str) -> str | None:
        """Why no new file can be written at ``path`` (``None``: nothing is in the way).

        git has no file inside a file or a link, and no file that is also a folder: the
        commit would delete what is there while the result said "created".
        """
        parts = path.split("/")
        for end in range(1, len(parts)):
            above = "/".join(parts[:end])
            found = self.text(above)
            if found is None or found is FOLDER:
                continue
            what = found.what if isinstance(found, NotAFile) else "a file"
            return f"{above} is {what}, so nothing can be created inside it"
        found = self.text(path)
        if found is FOLDER:
            return f"{path} is a folder; a file there would delete everything in it"
        if isinstance(found, NotAFile):
            return f"{path} is {found.what}; qweb does not replace it"
        inside = next(
            (
                other
                for other, text in self.current.items()
                if text is not None and other.startswith(f"{path}/")
            ),
            None,
        )
        if inside is not None:
            return f"{path} is a folder: {inside} was created earlier in this answer"
        return None

    def changed_files(self) -> dict[str, str | None]:
        return {
            path: text
            for path, text in self.current.items()
            if not (text is None and self.base.get(path) is None)
        }


def _result(
    op: EditBlock | DeleteFile | RenameFile, path: str, outcome: BlockOutcome
) -> BlockResult:
    return BlockResult(
        index=op.index,
        path=path,
        status=outcome.status,
        how=outcome.how,
        confidence=outcome.confidence,
        reason=outcome.reason,
        start_line=outcome.start_line,
        end_line=outcome.end_line,
        line=op.line,
    )


def _usable(files: _Files, raw_path: str) -> tuple[str, str | None]:
    """The cleaned path, and why operations on it are refused (None when they are not)."""
    try:
        path = clean_path(raw_path)
    except UnsafePath as unsafe:
        return raw_path, f"unsafe path: {unsafe.reason}"
    if path in files.gone:
        return path, files.gone[path]
    return path, files.writable(path)


def _not_a_file(path: str, found: NotAFile) -> str:
    if found is FOLDER:
        return f"{path} is a folder, not a file"
    return f"{path} is {found.what}; qweb does not change it"


def _apply_edit(files: _Files, op: EditBlock) -> BlockResult:
    path, problem = _usable(files, op.path)
    if problem:
        return _result(op, path, _refused(problem))
    text = files.text(path)
    if isinstance(text, NotAFile):
        return _result(op, path, _refused(_not_a_file(path, text)))
    if isinstance(text, BinaryFile):
        return _result(op, path, _refused("binary file"))
    if text is None:
        if op.search.strip():
            return _result(op, path, _refused("no such file"))
        problem = files.creation_problem(path)
        if problem:
            return _result(op, path, _refused(f"cannot create {path}: {problem}"))
        text = ""
    outcome = apply_block(text, op.search, op.replace)
    if outcome.text is not None:
        files.write(path, outcome.text)
    return _result(op, path, outcome)


def _apply_delete(files: _Files, op: DeleteFile) -> BlockResult:
    path, problem = _usable(files, op.path)
    if problem:
        return _result(op, path, _refused(problem))
    found = files.text(path)
    if found is None:
        return _result(op, path, _refused("no such file"))
    if isinstance(found, NotAFile):
        return _result(op, path, _refused(_not_a_file(path, found)))
    files.write(path, None)
    files.gone[path] = "the file was deleted earlier in this answer"
    return _result(op, path, BlockOutcome(text="", how="deleted", confidence=1.0, reason=""))


def _apply_rename(files: _Files, op: RenameFile) -> BlockResult:
    old, problem = _usable(files, op.old_path)
    if problem:
        return _result(op, old, _refused(problem))
    try:
        new = clean_path(op.new_path)
    except UnsafePath as unsafe:
        return _result(op, old, _refused(f"unsafe new path: {unsafe.reason}"))
    problem = files.writable(new)
    if problem:
        # Half a rename (the old file deleted, the new one never written) loses the file.
        return _result(op, old, _refused(f"cannot rename to {new}: {problem}"))
    text = files.text(old)
    if text is None:
        return _result(op, old, _refused("no such file"))
    if isinstance(text, NotAFile):
        return _result(op, old, _refused(_not_a_file(old, text)))
    if isinstance(text, BinaryFile):
        return _result(op, old, _refused("binary file: it cannot be renamed here"))
    if new == old:
        return _result(op, old, _refused("RENAME to the same path"))
    target = files.text(new)
    if isinstance(target, str | BinaryFile):
        return _result(op, old, _refused(f"cannot rename to {new}: that file exists"))
    problem = files.creation_problem(new)
    if problem:
        return _result(op, old, _refused(f"cannot rename to {new}: {problem}"))
    files.write(new, text)
    files.write(old, None)
    files.gone.pop(new, None)
    files.gone[old] = f"the file was renamed to {new} earlier in this answer; edit {new}"
    origin = next((source for source, target in files.renamed.items() if target == old), old)
    files.renamed.pop(origin, None)
    if origin != new:
        files.renamed[origin] = new
    return _result(
        op, old, BlockOutcome(text="", how="renamed", confidence=1.0, reason=f"renamed to {new}")
    )


def _anywhere(path: str) -> str | None:
    return None


def apply_answer(
    parsed: ParsedAnswer,
    read_file: Callable[[str], FileText],
    *,
    writable: Callable[[str], str | None] = _anywhere,
) -> EditOutcome:
    """Apply every operation of ``parsed`` in answer order to files read from the base.

    ``read_file(path)`` gets a cleaned relative path and returns the file's text at the
    base, None when there is nothing at that path, ``BINARY_FILE``, or for what is not a
    file: ``FOLDER``, ``SYMLINK`` or ``SUBMODULE``. Only a reader that reports folders and
    links lets the answer be refused where its commit would replace them.

    ``writable(path)`` says why an operation may not write ``path`` (a scope, say), or
    ``None``; an operation on such a path, or a RENAME onto one, is refused with that reason.
    """
    files = _Files(read_file, writable)
    results: list[BlockResult] = []
    for op in parsed.operations:
        if isinstance(op, EditBlock):
            results.append(_apply_edit(files, op))
        elif isinstance(op, DeleteFile):
            results.append(_apply_delete(files, op))
        else:
            results.append(_apply_rename(files, op))
    for problem in parsed.problems:
        results.append(
            BlockResult(
                index=-1,
                path=problem.path or "",
                status=REFUSED,
                how=None,
                confidence=0.0,
                reason=problem.reason,
                start_line=None,
                end_line=None,
                line=problem.line,
            )
        )
    results.sort(key=lambda result: result.line)
    return EditOutcome(files=files.changed_files(), results=results, renamed=dict(files.renamed))
