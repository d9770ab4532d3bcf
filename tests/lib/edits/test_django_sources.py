"""Property-style checks on real code: blocks cut from Django's own source files.

Each case takes a random slice of a random module as SEARCH and an edited copy as REPLACE,
perturbs the block the way models do, and checks the file that comes out.
"""

from __future__ import annotations

import random
from pathlib import Path

import django
import pytest

from qweb.lib.edits import apply_block

SOURCES = sorted(Path(django.__file__).parent.rglob("*.py"))
CASES = 150


def bare_runs(file_lines: list[str], wanted: list[str]) -> int:
    """How often ``wanted`` occurs in the file ignoring all leading/trailing whitespace."""
    stripped = [line.strip() for line in file_lines]
    target = [line.strip() for line in wanted]
    n = len(target)
    return sum(1 for p in range(len(stripped) - n + 1) if stripped[p : p + n] == target)


def has_twin(file_lines: list[str], start: int, wanted: list[str]) -> bool:
    """Whether another place holds ``wanted`` with one more line among them, or one blank
    line fewer: SEARCH may have dropped that line, so the block is refused as ambiguous."""
    keys = [" ".join(line.split()) for line in file_lines]
    target = [" ".join(line.split()) for line in wanted]
    n = len(target)
    for p in range(len(keys)):
        if keys[p] != target[0] or start - n <= p <= start + n - 1:
            continue
        longer = keys[p : p + n + 1]
        if any(longer[:k] + longer[k + 1 :] == target for k in range(1, n)):
            return True
        shorter = keys[p : p + n - 1]
        if any(not target[k] and target[:k] + target[k + 1 :] == shorter for k in range(1, n - 1)):
            return True
    return False


def indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def cases(seed: int):
    """Yield (file text, file lines, start, SEARCH lines, REPLACE lines) for unique slices."""
    rng = random.Random(seed)
    produced = 0
    while produced < CASES:
        text = rng.choice(SOURCES).read_text(encoding="utf-8")
        file_lines = text.splitlines()
        if len(file_lines) < 20 or not text.endswith("\n") or "\t" in text or "\r" in text:
            continue
        size = rng.randint(2, 12)
        start = rng.randrange(len(file_lines) - size)
        search = file_lines[start : start + size]
        non_blank = [k for k, line in enumerate(search) if line.strip()]
        if len(non_blank) < 2 or bare_runs(file_lines, search) != 1:
            continue
        if has_twin(file_lines, start, search):
            continue
        k = rng.choice(non_blank)
        edit = rng.choice(["change", "insert", "delete"])
        if edit == "change":
            replace = [*search[:k], search[k] + "  # edited", *search[k + 1 :]]
        elif edit == "insert":
            replace = [*search[: k + 1], indent_of(search[k]) + "edited = True", *search[k + 1 :]]
        else:
            replace = search[:k] + search[k + 1 :]
        produced += 1
        yield text, file_lines, start, search, replace


def expected_text(file_lines, start, search, replace, eol="\n"):
    return eol.join([*file_lines[:start], *replace, *file_lines[start + len(search) :]]) + eol


def joined(lines, eol="\n"):
    return "".join(line + eol for line in lines)


@pytest.mark.parametrize("seed", [1, 2])
def test_exact_slices_give_the_expected_file(seed):
    for text, file_lines, start, search, replace in cases(seed):
        outcome = apply_block(text, joined(search), joined(replace))

        assert outcome.how == "exact"
        assert outcome.text == expected_text(file_lines, start, search, replace)
        assert (outcome.start_line, outcome.end_line) == (start + 1, start + len(search))


@pytest.mark.parametrize("seed", [3, 4])
def test_trailing_spaces_give_the_expected_file(seed):
    for text, file_lines, start, search, replace in cases(seed):
        noisy_search = [line + "  " if line.strip() else line for line in search]
        noisy_replace = [line + " \t" for line in replace]

        outcome = apply_block(text, joined(noisy_search), joined(noisy_replace))

        assert outcome.how == "whitespace"
        assert outcome.text == expected_text(file_lines, start, search, replace)


@pytest.mark.parametrize("seed", [5, 6])
def test_crlf_blocks_and_crlf_files_give_the_expected_file(seed):
    for text, file_lines, start, search, replace in cases(seed):
        crlf_block = apply_block(text, joined(search, "\r\n"), joined(replace, "\r\n"))
        crlf_file = apply_block(text.replace("\n", "\r\n"), joined(search), joined(replace))

        assert crlf_block.text == expected_text(file_lines, start, search, replace)
        assert crlf_file.text == expected_text(file_lines, start, search, replace, "\r\n")
        assert crlf_block.how == crlf_file.how == "exact"


@pytest.mark.parametrize(("seed", "shift"), [(7, "dedent"), (8, "indent"), (9, "tabs")])
def test_shifted_indentation_gives_the_expected_file(seed, shift):
    for text, file_lines, start, search, replace in cases(seed):
        common = min(len(indent_of(line)) for line in search + replace if line.strip())
        if shift == "dedent":
            if common == 0:
                continue
            moved_search = [line[common:] for line in search]
            moved_replace = [line[common:] for line in replace]
        elif shift == "indent":
            moved_search = ["    " + line if line.strip() else line for line in search]
            moved_replace = ["    " + line if line.strip() else line for line in replace]
        else:
            # Tabs for four spaces, as a model writing a Makefile habit into Python would.
            if any(len(indent_of(line)) % 4 for line in search + replace):
                continue
            moved_search = ["\t" * (len(indent_of(x)) // 4) + x.lstrip() for x in search]
            moved_replace = ["\t" * (len(indent_of(x)) // 4) + x.lstrip() for x in replace]
        if moved_search == search:
            continue

        outcome = apply_block(text, joined(moved_search), joined(moved_replace))

        assert outcome.how == "indentation", outcome.reason
        assert outcome.text == expected_text(file_lines, start, search, replace)


@pytest.mark.parametrize("seed", [10, 11])
def test_a_hallucinated_context_line_never_lands_wrongly(seed):
    rng = random.Random(seed)
    applied = 0
    total = 0
    for text, file_lines, start, search, replace in cases(seed):
        # The made-up line goes into the context before or after the edit, in both parts.
        prefix = 0
        while prefix < min(len(search), len(replace)) and search[prefix] == replace[prefix]:
            prefix += 1
        at = rng.randint(0, prefix)
        fake = indent_of(search[min(at, len(search) - 1)]) + "self.hallucinated_call()"
        outcome = apply_block(
            text,
            joined([*search[:at], fake, *search[at:]]),
            joined([*replace[:at], fake, *replace[at:]]),
        )

        total += 1
        if outcome.text is not None:
            applied += 1
            assert outcome.text == expected_text(file_lines, start, search, replace)
    assert applied >= 0.8 * total
