"""The edit benchmark's cases are sound: git hunks become blocks whose intended result is the
expected file, each perturbation is the one documented, and verdicts are counted right."""

from __future__ import annotations

import random

import pytest

from bench.edit_apply import (
    Attempt,
    Block,
    Case,
    block_from_body,
    clean_block,
    exact_apply,
    expected_text,
    extra_context_block,
    git_changes,
    indent_drift_block,
    make_cases,
    missing_context_block,
    missing_inner_context_block,
    off_by_one_block,
    qweb_apply,
    render_answer,
    split_lines,
    tally,
    target_status,
    trailing_spaces_block,
    truncate_answer,
    verdict,
    wrong_detail,
)

PATH = "pkg/things.py"
OLD = '''import os


def first(value):
    """Return the first thing."""
    total = value + 1
    return total


class Thing:
    name = "thing"

    def run(self):
        if self.name:
            print("running")
        return None

    def stop(self):
        return False
'''
NEW = OLD.replace("value + 1", "value + 2").replace(
    'print("running")', 'print("running", self.name)\n            os.sync()'
)


def changes_of(old: str = OLD, new: str = NEW, path: str = PATH):
    changes, skipped = git_changes({path: (old, new)})
    return changes, skipped


def rng() -> random.Random:
    return random.Random(7)


@pytest.fixture(scope="module")
def hunks():
    changes, skipped = changes_of()
    assert not skipped
    return changes


def test_each_git_hunk_becomes_one_block_of_its_old_and_new_side(hunks):
    first, second = hunks
    assert (first.old_start, first.old_count) == (2, 7)
    assert first.search == OLD.splitlines()[2:9]
    assert first.replace == NEW.splitlines()[2:9]
    assert [tag for tag, _ in second.body] == [" ", " ", " ", "-", "+", "+", " ", " ", " "]


def test_the_expected_file_has_only_that_hunk_applied_and_both_give_the_new_file(hunks):
    first, second = hunks
    assert expected_text(first, OLD, NEW) == OLD.replace("value + 1", "value + 2")
    assert expected_text(second, OLD, NEW) == NEW.replace("value + 2", "value + 1")
    both = expected_text(second, expected_text(first, OLD, NEW), NEW)
    assert both == NEW


def test_a_clean_block_applied_exactly_gives_the_expected_file(hunks):
    for change in hunks:
        answer = render_answer(PATH, clean_block(change))
        attempt = exact_apply(answer, OLD)
        assert attempt.applied
        assert attempt.result == expected_text(change, OLD, NEW)


def test_the_answer_is_aider_style_with_the_path_before_the_fence(hunks):
    lines = render_answer(PATH, clean_block(hunks[0])).splitlines()
    assert lines[2:5] == [PATH, "```python", "<<<<<<< SEARCH"]
    assert lines[-2:] == [">>>>>>> REPLACE", "```"]


def test_a_crlf_file_keeps_its_line_ends_in_the_expected_file_but_not_in_the_block():
    old, new = OLD.replace("\n", "\r\n"), NEW.replace("\n", "\r\n")
    (change, _), _ = changes_of(old, new)
    assert not any("\r" in text for _, text in change.body)
    assert expected_text(change, old, new) == OLD.replace("value + 1", "value + 2").replace(
        "\n", "\r\n"
    )


def test_hunks_holding_a_marker_or_fence_line_are_left_out():
    old = OLD.replace('"""Return the first thing."""', '"""\n    =======\n    """')
    new = old.replace("value + 1", "value + 2")
    changes, skipped = changes_of(old, new)
    assert changes == []
    assert skipped == {"marker_or_fence_line": 1}


def test_indent_drift_moves_every_non_blank_line_of_both_sides_by_four_spaces(hunks):
    change = hunks[1]  # every line of it is indented: both directions are possible
    steps = set()
    for seed in range(20):
        block = indent_drift_block(change, random.Random(seed))
        step = int(block.detail.split()[0])
        steps.add(step)
        for drifted, clean in [
            *zip(block.search, change.search, strict=True),
            *zip(block.replace, change.replace, strict=True),
        ]:
            if not clean.strip():
                assert drifted == clean
            elif step > 0:
                assert drifted == "    " + clean
            else:
                assert "    " + drifted == clean
    assert steps == {4, -4}


def test_indent_drift_only_indents_when_a_line_is_at_the_margin(hunks):
    block = indent_drift_block(hunks[0], rng())
    assert block.detail == "+4 spaces"


def test_trailing_spaces_are_added_to_some_search_lines_only(hunks):
    change = hunks[1]
    block = trailing_spaces_block(change, rng())
    assert block.replace == change.replace
    assert [line.rstrip(" ") for line in block.search] == change.search
    spaced = [a != b for a, b in zip(block.search, change.search, strict=True)]
    assert sum(spaced) == len(change.search) // 3


@pytest.mark.parametrize("make", [missing_context_block, off_by_one_block])
def test_dropped_or_moved_context_still_matches_the_file_and_gives_the_expected_file(hunks, make):
    old_lines = split_lines(OLD)
    for change in hunks:
        for seed in range(10):
            args = (change, old_lines) if make is off_by_one_block else (change,)
            block = make(*args, random.Random(seed))
            assert block is not None
            assert len(block.search) == len(change.search) - (make is missing_context_block)
            assert block.search == OLD.splitlines()[block.start : block.start + len(block.search)]
            attempt = exact_apply(render_answer(PATH, block), OLD)
            assert attempt.result == expected_text(change, OLD, NEW)


def test_missing_context_is_not_made_when_both_ends_are_changed_lines():
    change = changes_of("a\n", "b\n")[0][0]
    assert missing_context_block(change, rng()) is None
    assert off_by_one_block(change, ["a\n"], rng()) is None


def test_extra_context_puts_one_invented_line_between_context_lines_of_both_sides(hunks):
    for change in hunks:
        for seed in range(10):
            block = extra_context_block(change, random.Random(seed))
            assert block is not None and block.invented is not None
            assert len(block.search) == len(change.search) + 1
            assert len(block.replace) == len(change.replace) + 1
            after = int(block.detail.rsplit(" ", 1)[1])  # "invented '…' before old line N"
            neighbours = OLD.splitlines()[after - 2 : after]
            assert block.invented.strip() not in {line.strip() for line in neighbours}
            if block.invented:  # a blank one can't be told from the file's own blank lines
                assert [line for line in block.search if line != block.invented] == change.search
                assert [line for line in block.replace if line != block.invented] == (
                    change.replace
                )
                assert block.invented.strip() not in OLD
                assert exact_apply(render_answer(PATH, block), OLD).applied is False


def test_missing_inner_context_drops_one_inner_context_line_from_both_sides(hunks):
    change = hunks[1]
    block = missing_inner_context_block(change, rng())
    assert block is not None
    dropped = int(block.detail.rsplit(" ", 1)[1])  # "dropped old line N"
    assert change.old_start + 1 < dropped < change.old_start + change.old_count
    old_line_of = {}  # body index -> 1-based old line, for the lines the old side has
    for index, (tag, _) in enumerate(change.body):
        if tag != "+":
            old_line_of[index] = change.old_start + 1 + len(old_line_of)
    index = next(i for i, line in old_line_of.items() if line == dropped)
    assert change.body[index - 1][0] == change.body[index][0] == change.body[index + 1][0] == " "
    body = change.body[:index] + change.body[index + 1 :]
    assert block == block_from_body(body, change.old_start, block.detail)


def test_a_crlf_case_is_the_clean_answer_with_crlf_line_ends(hunks):
    cases = {case.variant: case for case in make_cases(hunks[0], OLD, NEW, seed=1)}
    assert cases["crlf"].answer == cases["clean"].answer.replace("\n", "\r\n")
    assert cases["crlf"].expected == cases["clean"].expected
    assert exact_apply(cases["crlf"].answer, OLD).applied is False


def test_a_truncated_answer_is_a_prefix_that_never_reaches_replace_and_must_be_refused(hunks):
    clean = render_answer(PATH, clean_block(hunks[1]))
    for seed in range(30):
        answer, detail = truncate_answer(clean, random.Random(seed))
        assert clean.startswith(answer)
        assert "<<<<<<< SEARCH\n" in answer
        assert ">>>>>>> REPLACE" not in answer
        assert detail.startswith(("cut in SEARCH", "cut in REPLACE"))
    case = next(c for c in make_cases(hunks[1], OLD, NEW, seed=1) if c.variant == "truncated")
    assert case.expect_refusal and case.refusal_is_right
    assert exact_apply(case.answer, OLD).applied is False


def test_every_variant_is_made_and_the_same_seed_makes_the_same_cases(hunks):
    cases = make_cases(hunks[1], OLD, NEW, seed=3)
    assert len({case.variant for case in cases}) == 9
    again = make_cases(hunks[1], OLD, NEW, seed=3)
    assert [case.answer for case in cases] == [case.answer for case in again]
    for case in cases:
        assert not case.ill_defined
        assert case.refusal_is_right is (case.variant == "truncated")


DUPLICATED = """def a():
    one = 1
    two = 2
    three = 3
    target = 0
    four = 4
    five = 5
    six = 6


def b():
    one = 1
    two = 2
    three = 3
    target = 0
    four = 4
    five = 5
    six = 6
"""


def test_a_hunk_whose_lines_occur_twice_is_ambiguous_and_exact_matching_refuses_it():
    at = DUPLICATED.rindex("target = 0")
    new = DUPLICATED[:at] + "target = 1" + DUPLICATED[at + len("target = 0") :]
    (change,), _ = changes_of(DUPLICATED, new)
    cases = {case.variant: case for case in make_cases(change, DUPLICATED, new, seed=1)}
    assert cases["clean"].refusal_is_right
    assert cases["indent_drift"].refusal_is_right  # judged on the stripped lines
    assert exact_apply(cases["clean"].answer, DUPLICATED).applied is False


def test_a_search_found_only_somewhere_else_is_ill_defined():
    plain = ["a", "b", "c", "x", "a", "b"]
    assert target_status(plain, Block(["a", "b"], ["a", "B"], start=4), False) == (True, False)
    assert target_status(plain, Block(["a", "b"], ["a", "B"], start=3), False) == (False, True)
    assert target_status(plain, Block(["a", "z"], ["a", "B"], start=0), False) == (False, False)
    assert target_status(plain, Block(["a", "z"], ["a", "B"], start=0), True) == (True, False)


def _case(hunks, variant: str) -> Case:
    return next(c for c in make_cases(hunks[0], OLD, NEW, seed=1) if c.variant == variant)


def test_verdicts_count_a_refused_truncated_block_as_refused_correctly(hunks):
    clean, truncated = _case(hunks, "clean"), _case(hunks, "truncated")
    right = Attempt(True, clean.expected)
    rows = [
        (clean, verdict(clean, right)),
        (clean, verdict(clean, Attempt(True, OLD))),
        (clean, verdict(clean, Attempt(False))),
        (truncated, verdict(truncated, Attempt(False))),
        (truncated, verdict(truncated, Attempt(True, truncated.expected))),
    ]
    assert [outcome for _, outcome in rows] == ["right", "wrong", "refused", "refused", "wrong"]
    figures = tally(rows)
    assert (figures["right"], figures["refused"], figures["wrong"]) == (1, 2, 2)
    assert figures["refused_correctly"] == 1
    assert figures["fraction_correct"] == 0.4


def test_a_wrong_result_that_kept_the_invented_line_is_named(hunks):
    case = next(
        case
        for seed in range(50)
        for case in make_cases(hunks[0], OLD, NEW, seed=seed)
        if case.variant == "extra_context" and case.invented
    )
    verbatim = OLD.replace(
        "\n".join(hunks[0].search), "\n".join(line for line in case.search_lines)
    ).replace("value + 1", "value + 2")
    assert wrong_detail(case, Attempt(True, verbatim)) == "kept the invented line"
    assert wrong_detail(case, Attempt(True, OLD)) == "applied, file unchanged"


def test_the_library_adapter_reports_an_applied_clean_block_and_a_refused_truncated_one(hunks):
    clean, truncated = _case(hunks, "clean"), _case(hunks, "truncated")
    applied = qweb_apply(clean.answer, PATH, OLD)
    assert (applied.applied, applied.how, applied.start_line) == (True, "exact", 3)
    assert verdict(clean, applied) == "right"
    refused = qweb_apply(truncated.answer, PATH, OLD)
    assert refused.applied is False
    assert verdict(truncated, refused) == "refused"
