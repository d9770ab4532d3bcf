"""Applying edits on real changes: SEARCH/REPLACE blocks from two Django releases; JSON out.

Run from the repository root (prints one JSON object on stdout, logs on stderr)::

    .venv/bin/python bench/edit_apply.py
    .venv/bin/python bench/edit_apply.py --versions 5.1.4 5.2.8 --limit 300 --seed 1
    .venv/bin/python bench/edit_apply.py --dump build/edit-apply-wrong   # wrong cases as files

Corpus. The sdists of two Django releases are fetched once with ``pip download --no-deps
--no-binary :all:`` into ``build/bench-cache/`` and read in memory. Every ``.py`` file present
in both whose text differs is diffed by git (``git diff --no-index -U3``, git's defaults, no
user configuration) and the diff is read with ``qweb.lib.diffs.parse_diff``. Each hunk is one
change: its old side (context and removed lines) is the SEARCH, its new side (context and added
lines) the REPLACE, and the expected file is the old file with only that hunk applied, its own
line ends kept. Hunks are left out, and counted, when a line would end the block early (a line
starting with ``<<<<<<<``, ``=======``, ``>>>>>>>`` or a code fence) or when the hunk reaches a
last line without a line end (the block cannot say whether one is wanted). A seeded sample of
``--limit`` hunks is taken (all of them by default, or with ``--limit 0``).

Each hunk is sent in each variant below as an Aider-style answer (a line of prose, the path on
its own line, a fenced block with ``<<<<<<< SEARCH`` / ``=======`` / ``>>>>>>> REPLACE``), through
``parse_answer`` and ``apply_answer`` with a reader that knows only the old file. Perturbations
are seeded per hunk and variant, so a hunk gets the same ones whatever ``--limit`` is.

- ``clean``: the block as above.
- ``indent_drift``: every non-blank line of both SEARCH and REPLACE indented by 4 more spaces,
  or 4 fewer when every non-blank line has at least 4 (chosen at random where both are
  possible). A tool that re-indents REPLACE by the same amount gets the expected file.
- ``trailing_spaces``: a third of the SEARCH lines (at least one), chosen at random, end with
  1 to 3 extra spaces; REPLACE is untouched.
- ``missing_context``: the first or the last line of the hunk, when it is a context line, is
  left out of both SEARCH and REPLACE (the block still matches the file exactly, in fewer lines).
- ``extra_context``: a line that is not in the file (a blank line or a comment, indented like
  its neighbour, never equal to either neighbour) is put between two adjacent context lines,
  in both SEARCH and REPLACE: the model believes it is there and leaves it unchanged. Right
  is the expected file, without that line; a tool that writes REPLACE as given adds it, and
  that is counted wrong (the wrong case's ``what`` says ``kept the invented line`` then).
- ``missing_inner_context``: the mirror image, not in the issue's list but the harder half of
  "a missing context line": a context line between two other context lines is left out of
  both SEARCH and REPLACE. Right is the expected file, that line kept. (Beside a changed line
  the missing line could belong before or after the change: such lines are not chosen, and
  for the same reason ``extra_context`` never invents a line equal to a neighbour.)
- ``crlf``: the whole answer with CRLF line ends (the files have LF ends, which must stay).
- ``truncated``: the answer stops at a random character between the start of SEARCH's body
  and the ``>>>>>>> REPLACE`` line, which is never reached. Refusing is right; applying
  anything is wrong.
- ``off_by_one``: the block's window moved one line: one end's context line dropped and the
  file's neighbouring line added at the other end, in both SEARCH and REPLACE. It still matches
  the file exactly, one line off.

A variant that cannot be made for a hunk (no context line where it needs one) is skipped.

Judging, per case: ``right`` = applied and the file equals the expected file byte for byte;
``refused`` = not applied (a refused block, or a block the parser did not return);
``wrong`` = applied and any other file, or applied at all for ``truncated``.
``refused_correctly`` = refused where refusing is the right answer: ``truncated``, and blocks
whose target is ambiguous in the old file - its lines (exact for the exact-matching variants,
compared with leading and trailing whitespace stripped for the others) occur more than once.
The clean ones of those are counted as ``ambiguous_in_source``. ``correct`` = ``right`` +
``refused_correctly``; the target is ``correct`` >= 95% with no ``wrong``. A case whose
perturbed SEARCH matches the file exactly somewhere other than the hunk (the answer then
literally asks for another edit) is ``ill_defined``, counted by variant and left out.

The baseline runs on the same cases: plain exact matching (SEARCH and REPLACE are the lines
between the markers, each ended with ``\\n``; applied when SEARCH occurs exactly once in the
file, ``str.replace``; refused otherwise).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "bench-cache"
DEFAULT_VERSIONS = ("5.1.4", "5.2.8")
DEFAULT_LIMIT = 0
DEFAULT_SEED = 20_240_601
VARIANTS = (
    "clean",
    "indent_drift",
    "trailing_spaces",
    "missing_context",
    "extra_context",
    "missing_inner_context",
    "crlf",
    "truncated",
    "off_by_one",
)
TARGET_CORRECT = 0.95
INVENTED_LINES = (
    "",
    "# Keep this in sync with the documentation.",
    "# See above.",
)
_MARKER_STARTS = ("<<<<<<<", "=======", ">>>>>>>", "```")
_PATH_IN_REASON = re.compile(r"\S+\.py\b")
_SEARCH, _DIVIDER, _REPLACE = "<<<<<<< SEARCH", "=======", ">>>>>>> REPLACE"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- corpus --------------------------------------------------------------------------------


def fetch_sdist(version: str, cache: Path = CACHE) -> Path:
    """The sdist of Django ``version``, downloaded into ``cache`` once."""
    cache.mkdir(parents=True, exist_ok=True)
    found = _cached_sdist(version, cache)
    if found is None:
        log(f"downloading the Django {version} sdist into {cache}")
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
                *("--no-binary", ":all:", f"django=={version}", "-d", str(cache)),
            ],
            check=True,
            stdout=sys.stderr,
        )
        found = _cached_sdist(version, cache)
    if found is None:
        raise SystemExit(f"pip download left no Django {version} sdist in {cache}")
    return found


def _cached_sdist(version: str, cache: Path) -> Path | None:
    # Older sdists are named Django-x.y.z.tar.gz, newer ones django-x.y.z.tar.gz.
    for path in sorted(cache.glob("*.tar.gz")):
        if path.name.lower() == f"django-{version}.tar.gz":
            return path
    return None


def read_python_sources(archive: Path) -> dict[str, str]:
    """The archive's UTF-8 ``.py`` files by path below its top folder, text as stored."""
    sources = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".py"):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            try:
                text = handle.read().decode("utf-8")
            except UnicodeDecodeError:
                continue
            sources[member.name.split("/", 1)[1]] = text
    return sources


def split_lines(text: str) -> list[str]:
    """Lines as git sees them: split after each ``\\n`` only, each keeping its end."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def strip_end(line: str) -> str:
    if line.endswith("\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith("\n") else line


@dataclass(frozen=True)
class Change:
    """One git hunk of one file. ``body`` is git's hunk: (tag, line without its end), tag one
    of ``" "`` (context), ``"-"`` (removed), ``"+"`` (added)."""

    path: str
    old_start: int  # 0-based index of the first old-side line in the old file
    old_count: int
    new_start: int
    new_count: int
    body: tuple[tuple[str, str], ...]

    @property
    def label(self) -> str:
        return f"{self.path}:{self.old_start + 1}-{self.old_start + self.old_count}"

    @property
    def search(self) -> list[str]:
        return [text for tag, text in self.body if tag != "+"]

    @property
    def replace(self) -> list[str]:
        return [text for tag, text in self.body if tag != "-"]


def expected_text(change: Change, old: str, new: str) -> str:
    """The old file with only this hunk applied, line ends as in the files."""
    old_lines, new_lines = split_lines(old), split_lines(new)
    end = change.old_start + change.old_count
    added = new_lines[change.new_start : change.new_start + change.new_count]
    return "".join(old_lines[: change.old_start] + added + old_lines[end:])


def git_changes(pairs: dict[str, tuple[str, str]]) -> tuple[list[Change], Counter[str]]:
    """git's hunks between the old and new text of each path, and the hunks left out by
    reason. Files are written as they are (bytes), so git sees their own line ends."""
    from qweb.lib.diffs import parse_diff

    skipped: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="qweb-edit-bench-") as tmp:
        for side, index in (("old", 0), ("new", 1)):
            for path, texts in pairs.items():
                target = Path(tmp, side, path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(texts[index].encode("utf-8"))
        env = os.environ | {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
        completed = subprocess.run(
            [
                *("git", "-c", "core.quotePath=false", "diff", "--no-index", "--no-color"),
                *("--no-ext-diff", "--no-textconv", "--no-renames", "-U3", "old", "new"),
            ],
            cwd=tmp,
            env=env,
            capture_output=True,
            check=False,
        )
    if completed.returncode not in (0, 1):
        raise SystemExit(f"git diff failed: {completed.stderr.decode(errors='replace')}")
    changes = []
    for file_diff in parse_diff(completed.stdout.decode("utf-8")):
        path = file_diff.path.removeprefix("new/")
        old, new = pairs[path]
        old_lines, new_lines = split_lines(old), split_lines(new)
        for hunk in file_diff.hunks:
            change, reason = _change_from_hunk(path, hunk, old_lines, new_lines)
            if change is None:
                skipped[reason] += 1
            else:
                changes.append(change)
    return changes, skipped


def _change_from_hunk(
    path: str, hunk: Any, old_lines: list[str], new_lines: list[str]
) -> tuple[Change | None, str]:
    # An empty side has its start on the line before it; no such hunk with 3 context lines.
    if not hunk.old_length or not hunk.new_length:
        return None, "empty_side"
    old_start, new_start = hunk.old_start - 1, hunk.new_start - 1
    old_side = old_lines[old_start : old_start + hunk.old_length]
    new_side = new_lines[new_start : new_start + hunk.new_length]
    if any(line.kind == "note" for line in hunk.lines) or not (
        old_side[-1].endswith("\n") and new_side[-1].endswith("\n")
    ):
        return None, "no_line_end_at_end_of_file"
    body = []
    old_index = new_index = 0
    for line in hunk.lines:
        if line.kind == "context":
            text = strip_end(old_side[old_index])
            if text != strip_end(new_side[new_index]):
                return None, "diff_mismatch"
            body.append((" ", text))
            old_index += 1
            new_index += 1
        elif line.kind == "remove":
            body.append(("-", strip_end(old_side[old_index])))
            old_index += 1
        else:
            body.append(("+", strip_end(new_side[new_index])))
            new_index += 1
        if body[-1][1] != line.text.rstrip("\r"):
            return None, "diff_mismatch"
    if (old_index, new_index) != (len(old_side), len(new_side)):
        return None, "diff_mismatch"
    if any(text.lstrip().startswith(_MARKER_STARTS) for _, text in body):
        return None, "marker_or_fence_line"
    change = Change(path, old_start, hunk.old_length, new_start, hunk.new_length, tuple(body))
    return change, ""


# --- answers and perturbations -------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """A SEARCH/REPLACE block as lines without ends, and where its SEARCH is meant to start
    in the old file (0-based)."""

    search: list[str]
    replace: list[str]
    start: int
    detail: str = ""
    invented: str | None = None  # extra_context: the line that is not in the file


def block_from_body(
    body: Sequence[tuple[str, str]], start: int, detail: str = "", invented: str | None = None
) -> Block:
    search = [text for tag, text in body if tag != "+"]
    replace = [text for tag, text in body if tag != "-"]
    return Block(search, replace, start, detail, invented)


def render_answer(path: str, block: Block) -> str:
    """An Aider-style answer holding the one block, LF line ends."""
    lines = [
        "Here is the change.",
        "",
        path,
        "```python",
        _SEARCH,
        *block.search,
        _DIVIDER,
        *block.replace,
        _REPLACE,
        "```",
    ]
    return "\n".join(lines) + "\n"


def clean_block(change: Change) -> Block:
    return block_from_body(change.body, change.old_start)


def indent_drift_block(change: Change, rng: random.Random) -> Block:
    lines = [text for text in change.search + change.replace if text.strip()]
    can_dedent = bool(lines) and all(text.startswith("    ") for text in lines)
    step = rng.choice((4, -4)) if can_dedent else 4

    def move(text: str) -> str:
        if not text.strip():
            return text
        return "    " + text if step > 0 else text[4:]

    return Block(
        [move(text) for text in change.search],
        [move(text) for text in change.replace],
        change.old_start,
        f"{step:+d} spaces",
    )


def trailing_spaces_block(change: Change, rng: random.Random) -> Block:
    search = change.search
    chosen = sorted(rng.sample(range(len(search)), max(1, len(search) // 3)))
    spaced = list(search)
    for index in chosen:
        spaced[index] += " " * rng.randint(1, 3)
    lines = ", ".join(str(index + 1) for index in chosen)
    return Block(spaced, change.replace, change.old_start, f"SEARCH lines {lines}")


def missing_context_block(change: Change, rng: random.Random) -> Block | None:
    ends = [end for end, index in (("first", 0), ("last", -1)) if change.body[index][0] == " "]
    if not ends or len(change.body) < 2:
        return None
    end = rng.choice(ends)
    if end == "first":
        return block_from_body(change.body[1:], change.old_start + 1, "dropped the first line")
    return block_from_body(change.body[:-1], change.old_start, "dropped the last line")


def extra_context_block(change: Change, rng: random.Random) -> Block | None:
    body = change.body
    places = [i for i in range(1, len(body)) if body[i - 1][0] == " " and body[i][0] == " "]
    if not places:
        return None
    place = rng.choice(places)
    before, after = body[place - 1][1], body[place][1]
    neighbour = after if after.strip() else before
    indent = neighbour[: len(neighbour) - len(neighbour.lstrip())]
    # Equal to a neighbour (a blank line beside a blank line), the invented line could be
    # either of the two, and where the block's changes go would be a guess.
    choices = [line for line in INVENTED_LINES if line not in (before.strip(), after.strip())]
    invented = rng.choice(choices)
    invented = indent + invented if invented else ""
    new_body = [*body[:place], (" ", invented), *body[place:]]
    old_line = change.old_start + sum(tag != "+" for tag, _ in body[:place]) + 1
    detail = f"invented {invented!r} before old line {old_line}"
    return block_from_body(new_body, change.old_start, detail, invented)


def missing_inner_context_block(change: Change, rng: random.Random) -> Block | None:
    body = change.body
    # Beside a changed line, the missing line could go before or after the change: only a
    # line between two context lines leaves the block's meaning certain.
    places = [i for i in range(1, len(body) - 1) if body[i - 1][0] == body[i][0] == " "]
    places = [i for i in places if body[i + 1][0] == " "]
    if not places:
        return None
    place = rng.choice(places)
    old_line = change.old_start + sum(tag != "+" for tag, _ in body[:place]) + 1
    new_body = [*body[:place], *body[place + 1 :]]
    return block_from_body(new_body, change.old_start, f"dropped old line {old_line}")


def off_by_one_block(change: Change, old_lines: Sequence[str], rng: random.Random) -> Block | None:
    body = change.body
    end = change.old_start + change.old_count
    moves = []
    if body[0][0] == " " and end < len(old_lines):
        moves.append("down")
    if body[-1][0] == " " and change.old_start > 0:
        moves.append("up")
    if not moves or len(body) < 2:
        return None
    if rng.choice(moves) == "down":
        new_body = [*body[1:], (" ", strip_end(old_lines[end]))]
        return block_from_body(new_body, change.old_start + 1, "window moved down one line")
    new_body = [(" ", strip_end(old_lines[change.old_start - 1])), *body[:-1]]
    return block_from_body(new_body, change.old_start - 1, "window moved up one line")


def truncate_answer(answer: str, rng: random.Random) -> tuple[str, str]:
    """The answer cut at a random character between the start of SEARCH's body and the
    ``>>>>>>> REPLACE`` line, and where it was cut."""
    first = answer.index(_SEARCH + "\n") + len(_SEARCH) + 1
    last = answer.index("\n" + _REPLACE) + 1
    cut = rng.randrange(first, last)
    part = "SEARCH" if cut <= answer.index("\n" + _DIVIDER + "\n") else "REPLACE"
    return answer[:cut], f"cut in {part} after {cut - first} of {last - first} characters"


@dataclass
class Case:
    change: Change
    variant: str
    answer: str
    expected: str
    old: str
    detail: str = ""
    search_lines: list[str] = field(default_factory=list)
    invented: str | None = None  # extra_context: the line that is not in the file
    expect_refusal: bool = False  # truncated: refusing is the only right answer
    refusal_is_right: bool = False  # truncated, or the target is ambiguous in the old file
    ill_defined: bool = False

    @property
    def path(self) -> str:
        return self.change.path


def occurrences(lines: Sequence[str], window: Sequence[str]) -> list[int]:
    """Every start (overlapping too) where ``window`` equals consecutive ``lines``."""
    if not window or len(window) > len(lines):
        return []
    first, size = window[0], len(window)
    return [
        start
        for start in range(len(lines) - size + 1)
        if lines[start] == first and list(lines[start : start + size]) == list(window)
    ]


def target_status(plain: Sequence[str], block: Block, loose_ambiguous: bool) -> tuple[bool, bool]:
    """Whether refusing ``block`` is right, and whether it is ill-defined, over the old file's
    lines (ends stripped). A SEARCH found exactly where the hunk is: refusing is right when it
    is found elsewhere too. Found only elsewhere: ill-defined. Found nowhere (a tool has to
    match loosely): refusing is right when the hunk's own lines, stripped, occur more than
    once (``loose_ambiguous``)."""
    literal = occurrences(plain, block.search)
    if block.start in literal:
        return len(literal) > 1, False
    if literal:
        return False, True
    return loose_ambiguous, False


def make_cases(
    change: Change, old: str, new: str, seed: int, variants: Iterable[str] = VARIANTS
) -> list[Case]:
    """The cases of one hunk, one per variant that can be made for it."""
    old_lines = split_lines(old)
    plain = [strip_end(line) for line in old_lines]
    loose = [line.strip() for line in plain]
    expected = expected_text(change, old, new)
    clean = clean_block(change)
    loose_ambiguous = len(occurrences(loose, [text.strip() for text in clean.search])) > 1
    cases = []
    for variant in variants:
        rng = random.Random(f"{seed}:{change.label}:{variant}")
        block: Block | None
        if variant in ("clean", "crlf", "truncated"):
            block = clean
        elif variant == "indent_drift":
            block = indent_drift_block(change, rng)
        elif variant == "trailing_spaces":
            block = trailing_spaces_block(change, rng)
        elif variant == "missing_context":
            block = missing_context_block(change, rng)
        elif variant == "extra_context":
            block = extra_context_block(change, rng)
        elif variant == "missing_inner_context":
            block = missing_inner_context_block(change, rng)
        elif variant == "off_by_one":
            block = off_by_one_block(change, old_lines, rng)
        else:
            raise ValueError(f"unknown variant {variant!r}")
        if block is None:
            continue
        answer = render_answer(change.path, block)
        detail = block.detail
        if variant == "crlf":
            answer = answer.replace("\n", "\r\n")
        elif variant == "truncated":
            answer, detail = truncate_answer(answer, rng)
        case = Case(change, variant, answer, expected, old, detail, block.search, block.invented)
        if variant == "truncated":
            case.expect_refusal = case.refusal_is_right = True
        else:
            case.refusal_is_right, case.ill_defined = target_status(plain, block, loose_ambiguous)
        cases.append(case)
    return cases


# --- applying and judging ------------------------------------------------------------------


@dataclass
class Attempt:
    applied: bool
    result: str | None = None
    how: str = ""
    confidence: float | None = None
    reason: str = ""
    start_line: int | None = None
    end_line: int | None = None
    error: str = ""


def exact_apply(answer: str, old: str) -> Attempt:
    """The baseline: plain exact matching of the block's SEARCH text."""
    lines = [line.rstrip("\r") for line in answer.split("\n")]
    raw = answer.split("\n")
    try:
        opening = lines.index(_SEARCH)
        divider = lines.index(_DIVIDER, opening + 1)
        closing = lines.index(_REPLACE, divider + 1)
    except ValueError:
        return Attempt(False, how="exact", reason="incomplete block")
    search = "".join(line + "\n" for line in raw[opening + 1 : divider])
    replace = "".join(line + "\n" for line in raw[divider + 1 : closing])
    count = old.count(search)
    if count != 1:
        return Attempt(False, how="exact", reason=f"SEARCH found {count} times")
    return Attempt(True, old.replace(search, replace), how="exact")


def qweb_apply(answer: str, path: str, old: str) -> Attempt:
    """``parse_answer`` then ``apply_answer`` with a reader that knows only the old file."""
    from qweb.lib.edits import apply_answer, parse_answer

    try:
        parsed = parse_answer(answer)
        outcome = apply_answer(parsed, lambda wanted: old if wanted == path else None)
    except Exception as error:  # a crash is a finding: report it, keep measuring
        return Attempt(False, how="error", error=f"{type(error).__name__}: {error}")
    results = [result for result in outcome.results if result.path == path]
    applied = [result for result in results if result.status == "applied"]
    if not results:
        problems = "; ".join(problem.reason for problem in parsed.problems)
        return Attempt(False, how="not parsed", reason=problems[:200])
    shown = applied[0] if applied else results[0]
    attempt = Attempt(
        bool(applied),
        how=shown.how or ("parse problem" if shown.index == -1 else ""),
        confidence=shown.confidence,
        reason=str(shown.reason or "")[:200],
        start_line=shown.start_line,
        end_line=shown.end_line,
    )
    if applied:
        if path not in outcome.files:
            attempt.error = "applied, but the file is not in EditOutcome.files"
        attempt.result = outcome.files.get(path, old)
    return attempt


def verdict(case: Case, attempt: Attempt) -> str:
    """``right``, ``refused`` or ``wrong``."""
    if not attempt.applied:
        return "refused"
    if case.expect_refusal or attempt.result != case.expected:
        return "wrong"
    return "right"


def wrong_detail(case: Case, attempt: Attempt) -> str:
    """What a wrong result is, in a few words, when it has one of the simple shapes."""
    if case.expect_refusal:
        return "applied a truncated block"
    got = attempt.result or ""
    if got == case.old:
        return "applied, file unchanged"
    extra = _one_line_more(split_lines(got), split_lines(case.expected))
    if extra is not None:
        kept = case.invented is not None and strip_end(extra) == case.invented
        return "kept the invented line" if kept else f"one line too many: {extra!r}"
    lost = _one_line_more(split_lines(case.expected), split_lines(got))
    if lost is not None:
        return f"lost a line: {lost!r}"
    return ""


def _one_line_more(longer: list[str], shorter: list[str]) -> str | None:
    """The line ``longer`` has in addition to ``shorter``, when that is the only difference."""
    if len(longer) != len(shorter) + 1:
        return None
    index = next(
        (i for i, (a, b) in enumerate(zip(shorter, longer, strict=False)) if a != b), len(shorter)
    )
    return longer[index] if longer[:index] + longer[index + 1 :] == shorter else None


def _fraction(count: int, total: int) -> float:
    return round(count / total, 4) if total else 0.0


def tally(rows: Sequence[tuple[Case, str]]) -> dict[str, Any]:
    """Counts and fractions of one method over some cases."""
    counts = Counter(outcome for _, outcome in rows)
    refused_correctly = sum(
        outcome == "refused" and case.refusal_is_right for case, outcome in rows
    )
    total = len(rows)
    correct = counts["right"] + refused_correctly
    return {
        "cases": total,
        "right": counts["right"],
        "refused": counts["refused"],
        "wrong": counts["wrong"],
        "refused_correctly": refused_correctly,
        "fraction_right": _fraction(counts["right"], total),
        "fraction_refused": _fraction(counts["refused"], total),
        "fraction_wrong": _fraction(counts["wrong"], total),
        "fraction_correct": _fraction(correct, total),
    }


def short_diff(expected: str, got: str, limit: int = 30) -> list[str]:
    lines = list(
        difflib.unified_diff(
            expected.splitlines(), got.splitlines(), "expected", "got", n=1, lineterm=""
        )
    )
    return lines[:limit] + ([f"... {len(lines) - limit} more lines"] if len(lines) > limit else [])


def summarise(
    cases: Sequence[Case],
    outcomes: dict[str, list[str]],
    attempts: dict[str, list[Attempt]],
) -> dict[str, Any]:
    """Overall and per-variant figures of each method over the well-defined cases."""
    kept = [index for index, case in enumerate(cases) if not case.ill_defined]
    variants = [variant for variant in VARIANTS if any(c.variant == variant for c in cases)]
    report: dict[str, Any] = {}
    for method, verdicts in outcomes.items():
        rows = [(cases[index], verdicts[index]) for index in kept]
        report[method] = {
            "overall": tally(rows),
            "by_variant": {
                variant: tally([row for row in rows if row[0].variant == variant])
                for variant in variants
            },
        }
    qweb_attempts = attempts["qweb"]
    hows: dict[str, Counter[str]] = {variant: Counter() for variant in variants}
    reasons: Counter[str] = Counter()
    for index in kept:
        attempt = qweb_attempts[index]
        if attempt.applied:
            key = attempt.how
        else:
            key = f"refused by {attempt.how}" if attempt.how else "refused"
        hows[cases[index].variant][key] += 1
        if not attempt.applied:
            reason = _PATH_IN_REASON.sub("PATH", attempt.reason or attempt.error)
            reasons[re.sub(r"\d+", "N", reason)[:100]] += 1
    report["qweb"]["how_by_variant"] = {
        variant: dict(counter.most_common()) for variant, counter in hows.items()
    }
    report["qweb"]["refusal_reasons"] = dict(reasons.most_common(15))
    return report


def run_cases(
    cases: Sequence[Case],
) -> tuple[dict[str, list[str]], dict[str, list[Attempt]], dict[str, Any]]:
    """Every case through both methods; verdicts, attempts and seconds per method."""
    methods: dict[str, Callable[[Case], Attempt]] = {
        "qweb": lambda case: qweb_apply(case.answer, case.path, case.old),
        "exact": lambda case: exact_apply(case.answer, case.old),
    }
    outcomes: dict[str, list[str]] = {}
    attempts: dict[str, list[Attempt]] = {}
    seconds: dict[str, float] = {}
    for method, apply in methods.items():
        started = time.perf_counter()
        attempts[method] = [apply(case) for case in cases]
        seconds[method] = time.perf_counter() - started
        outcomes[method] = [
            verdict(case, attempt) for case, attempt in zip(cases, attempts[method], strict=True)
        ]
        log(f"{method}: {len(cases)} cases in {seconds[method]:.1f} s")
    timing = {
        method: {
            "seconds": round(spent, 3),
            "cases_per_second": round(len(cases) / spent, 1) if spent else None,
        }
        for method, spent in seconds.items()
    }
    return outcomes, attempts, timing


def wrong_cases(
    cases: Sequence[Case], outcomes: list[str], attempts: list[Attempt]
) -> list[dict[str, Any]]:
    rows = []
    for case, outcome, attempt in zip(cases, outcomes, attempts, strict=True):
        if outcome != "wrong" or case.ill_defined:
            continue
        rows.append(
            {
                "hunk": case.change.label,
                "variant": case.variant,
                "perturbation": case.detail,
                "how": attempt.how,
                "confidence": attempt.confidence,
                "reported_lines": [attempt.start_line, attempt.end_line],
                "reason": attempt.reason,
                "what": wrong_detail(case, attempt),
                "diff_expected_got": short_diff(case.expected, attempt.result or ""),
            }
        )
    return rows


def dump_wrong(
    folder: Path, cases: Sequence[Case], outcomes: list[str], attempts: list[Attempt]
) -> None:
    """Each wrong case's answer, old, expected and resulting file, for the library's author."""
    number = 0
    for case, outcome, attempt in zip(cases, outcomes, attempts, strict=True):
        if outcome != "wrong" or case.ill_defined:
            continue
        number += 1
        target = folder / f"{number:03d}-{case.variant}"
        target.mkdir(parents=True, exist_ok=True)
        (target / "answer.md").write_bytes(case.answer.encode())
        (target / "old.py").write_bytes(case.old.encode())
        (target / "expected.py").write_bytes(case.expected.encode())
        (target / "got.py").write_bytes((attempt.result or "").encode())
        facts = {"hunk": case.change.label, "detail": case.detail} | vars(attempt)
        facts.pop("result")
        (target / "case.json").write_text(json.dumps(facts, indent=2), encoding="utf-8")
    log(f"{number} wrong cases written under {folder}")


def sample_changes(changes: Sequence[Change], limit: int, seed: int) -> list[Change]:
    """A seeded sample of ``limit`` hunks (all when 0), in path and line order."""
    ordered = sorted(changes, key=lambda change: (change.path, change.old_start))
    if limit <= 0 or limit >= len(ordered):
        return ordered
    chosen = random.Random(seed).sample(range(len(ordered)), limit)
    return [ordered[index] for index in sorted(chosen)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--versions", nargs=2, default=DEFAULT_VERSIONS, metavar=("OLD", "NEW"))
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help="hunks; 0 for all")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--dump", type=Path, help="write the wrong cases as files here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))

    old_version, new_version = args.versions
    archives = [fetch_sdist(version) for version in (old_version, new_version)]
    old_files, new_files = (read_python_sources(archive) for archive in archives)
    common = sorted(set(old_files) & set(new_files))
    pairs = {
        path: (old_files[path], new_files[path])
        for path in common
        if old_files[path] != new_files[path]
    }
    log(f"{len(common)} .py files in both releases, {len(pairs)} changed")
    changes, skipped = git_changes(pairs)
    sampled = sample_changes(changes, args.limit, args.seed)
    log(f"{len(changes)} hunks, {sum(skipped.values())} left out, {len(sampled)} sampled")
    cases = [
        case
        for change in sampled
        for case in make_cases(change, *pairs[change.path], args.seed, args.variants)
    ]
    log(f"{len(cases)} cases")
    outcomes, attempts, timing = run_cases(cases)
    figures = summarise(cases, outcomes, attempts)
    qweb_right, exact_right = (
        figures["qweb"]["overall"]["right"],
        figures["exact"]["overall"]["right"],
    )
    overall = figures["qweb"]["overall"]
    errors = [
        {"hunk": case.change.label, "variant": case.variant, "error": attempt.error}
        for case, attempt in zip(cases, attempts["qweb"], strict=True)
        if attempt.error
    ]
    ill_defined = Counter(case.variant for case in cases if case.ill_defined)
    report = {
        "versions": [old_version, new_version],
        "seed": args.seed,
        "corpus": {
            "sdists": [archive.name for archive in archives],
            "py_files_in_both": len(common),
            "py_files_changed": len(pairs),
            "hunks": len(changes),
            "hunks_left_out": dict(skipped),
            "hunks_sampled": len(sampled),
            "cases": len(cases),
            "cases_judged": len(cases) - sum(ill_defined.values()),
            "ill_defined_by_variant": dict(ill_defined),
            "ambiguous_in_source": sum(
                case.variant == "clean" and case.refusal_is_right for case in cases
            ),
            "refusal_is_right_by_variant": dict(
                Counter(c.variant for c in cases if c.refusal_is_right and not c.ill_defined)
            ),
        },
        "qweb": figures["qweb"],
        "exact": figures["exact"],
        "ratio_right_qweb_over_exact": round(qweb_right / exact_right, 3) if exact_right else None,
        "target": {
            "fraction_correct_at_least": TARGET_CORRECT,
            "wrong_at_most": 0,
            "met": overall["fraction_correct"] >= TARGET_CORRECT and overall["wrong"] == 0,
        },
        "wrong_cases": wrong_cases(cases, outcomes["qweb"], attempts["qweb"]),
        "errors": errors,
        "timing": timing,
    }
    if args.dump:
        dump_wrong(args.dump, cases, outcomes["qweb"], attempts["qweb"])
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
