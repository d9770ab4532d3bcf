from __future__ import annotations

import time

from qweb.lib.edits import apply_block

MODULE = """\
import os


def load(path):
    with open(path) as handle:
        data = handle.read()
    return data


def save(path, data):
    with open(path, "w") as handle:
        handle.write(data)
    return len(data)
"""


TWINS = """\
class Reader:
    def first(self, items):
        if not items:
            return None
        value = items[0]
        self.log(value)
        return value

    def last(self, items):
        if not items:
            return None
        value = items[-1]
        self.log(value)
        return value
"""


def lines(*items: str) -> str:
    return "".join(item + "\n" for item in items)


def test_an_exact_match_is_replaced():
    outcome = apply_block(
        MODULE,
        lines("        data = handle.read()"),
        lines("        data = handle.read().strip()"),
    )

    assert outcome.status == "applied"
    assert (outcome.how, outcome.confidence, outcome.reason) == ("exact", 1.0, "")
    assert (outcome.start_line, outcome.end_line) == (6, 6)
    assert outcome.text == MODULE.replace("handle.read()", "handle.read().strip()")


def test_an_exact_match_found_twice_is_refused_with_both_lines():
    outcome = apply_block(
        TWINS, lines("        if not items:", "            return None"), lines("        pass")
    )

    assert outcome.status == "refused"
    assert outcome.text is None
    assert outcome.confidence == 0.0
    assert outcome.reason == "ambiguous: found 2 times (lines 3, 10)"


def test_a_match_must_start_at_the_start_of_a_line():
    outcome = apply_block("xdata = 1\ndata = 1\n", lines("data = 1"), lines("data = 2"))

    assert outcome.text == "xdata = 1\ndata = 2\n"


def test_trailing_whitespace_in_search_is_matched_as_whitespace():
    outcome = apply_block(
        MODULE,
        lines("def load(path):   ", "    with open(path) as handle:\t"),
        lines("def load(path):   ", "    with open(path, 'rb') as handle:  "),
    )

    assert outcome.how == "whitespace"
    assert outcome.confidence == 1.0
    # The untouched line stays as the file had it; REPLACE's trailing noise is dropped.
    assert outcome.text == MODULE.replace("open(path) as", "open(path, 'rb') as")


def test_a_missing_final_newline_is_kept_missing():
    outcome = apply_block("a = 1\nb = 2", lines("b = 2"), lines("b = 3"))

    assert outcome.text == "a = 1\nb = 3"


def test_a_final_newline_is_kept_when_replace_lacks_one():
    outcome = apply_block("a = 1\nb = 2\n", "b = 2", "b = 3")

    assert outcome.text == "a = 1\nb = 3\n"


def test_a_crlf_file_stays_crlf_when_the_block_uses_lf():
    content = MODULE.replace("\n", "\r\n")

    outcome = apply_block(content, lines("    return len(data)"), lines("    return 0", "# end"))

    assert outcome.how == "exact"
    assert outcome.text == content.replace("return len(data)\r\n", "return 0\r\n# end\r\n")


def test_an_lf_file_stays_lf_when_the_block_uses_crlf():
    outcome = apply_block(MODULE, "    return len(data)\r\n", "    return 0\r\n    # done\r\n")

    assert outcome.how == "exact"
    assert outcome.text == MODULE.replace("return len(data)\n", "return 0\n    # done\n")
    assert "\r" not in outcome.text


def test_a_uniformly_dedented_search_is_matched_and_replace_reindented():
    outcome = apply_block(
        MODULE,
        lines("with open(path) as handle:", "    data = handle.read()"),
        lines("with open(path) as handle:", "    data = handle.read()", "    data = data.strip()"),
    )

    assert outcome.how == "indentation"
    assert outcome.confidence == 1.0
    assert (outcome.start_line, outcome.end_line) == (5, 6)
    assert outcome.text == MODULE.replace(
        "data = handle.read()\n", "data = handle.read()\n        data = data.strip()\n"
    )


def test_an_over_indented_search_is_matched_and_replace_dedented():
    outcome = apply_block(
        MODULE,
        lines("        def save(path, data):", '            with open(path, "w") as handle:'),
        lines(
            "        def save(path, data, mode):", "            with open(path, mode) as handle:"
        ),
    )

    assert outcome.how == "indentation"
    assert "def save(path, data, mode):\n    with open(path, mode) as handle:\n" in outcome.text


def test_spaces_in_search_match_a_tab_indented_file():
    content = "def f():\n\tif x:\n\t\treturn 1\n\treturn 2\n"

    outcome = apply_block(
        content,
        lines("    if x:", "        return 1"),
        lines("    if x:", "        return 10", "    log()"),
    )

    assert outcome.how == "indentation"
    assert outcome.text == "def f():\n\tif x:\n\t\treturn 10\n\tlog()\n\treturn 2\n"


def test_a_search_matching_at_two_indentations_is_refused():
    content = "if a:\n    x = 1\n    y = 2\nif b:\n        x = 1\n        y = 2\n"

    outcome = apply_block(content, lines("x = 1", "y = 2"), lines("x = 3", "y = 2"))

    assert outcome.status == "refused"
    assert outcome.reason.startswith("ambiguous: found 2 times with different indentation")


def test_replace_that_cannot_be_reindented_is_refused():
    outcome = apply_block(
        MODULE,
        lines("        with open(path) as handle:", "            data = handle.read()"),
        lines("        with open(path) as handle:", "  data = handle.read()"),
    )

    assert outcome.status == "refused"
    assert "cannot be re-indented" in outcome.reason


def test_blank_lines_at_the_edges_of_search_that_the_file_lacks_are_ignored():
    content = "def f():\n    return 1\ndef g():\n    return 2\n"

    outcome = apply_block(
        content,
        lines("", "def g():", "    return 2", ""),
        lines("", "def g():", "    return 3", ""),
    )

    assert outcome.how == "whitespace"
    assert outcome.text == "def f():\n    return 1\ndef g():\n    return 3\n"


def test_a_hallucinated_context_line_is_matched_fuzzily_and_left_out():
    search = lines(
        "def save(path, data):",
        '    with open(path, "w") as handle:',
        "        handle.flush()",
        "        handle.write(data)",
        "    return len(data)",
    )

    outcome = apply_block(MODULE, search, search.replace("len(data)", "None"))

    assert outcome.status == "applied"
    assert outcome.how == "fuzzy"
    assert 0.7 < outcome.confidence < 1.0
    assert (outcome.start_line, outcome.end_line) == (10, 13)
    assert outcome.text == MODULE.replace("return len(data)", "return None")
    assert "handle.flush" not in outcome.text


def test_a_file_line_that_search_leaves_out_is_kept():
    search = lines(
        "def load(path):",
        "    with open(path) as handle:",
        "    return data",
    )
    replace = lines(
        "def load(path, encoding):",
        "    with open(path) as handle:",
        "    return data",
    )

    outcome = apply_block(MODULE, search, replace)

    assert outcome.how == "fuzzy"
    assert outcome.text == MODULE.replace("def load(path):", "def load(path, encoding):")
    assert "data = handle.read()" in outcome.text


def test_replace_changing_a_line_that_is_not_in_the_file_is_refused():
    search = lines(
        "def load(path):",
        "    with open(path) as handle:",
        "        handle.seek(0)",
        "        data = handle.read()",
        "    return data",
    )

    outcome = apply_block(MODULE, search, search.replace("handle.seek(0)", "handle.seek(10)"))

    assert outcome.status == "refused"
    assert "SEARCH line 3 ('handle.seek(0)') is not in the file and REPLACE changes it" in (
        outcome.reason
    )


def test_lines_added_where_the_file_has_lines_search_does_not_show_are_refused():
    content = lines("def f():", "    a = 1", "    b = 2", "    c = 3", "    d = 4", "    return 0")
    search = lines("def f():", "    a = 1", "    c = 3", "    d = 4", "    return 0")
    replace = lines("def f():", "    a = 1", "    x = 0", "    c = 3", "    d = 4", "    return 0")

    outcome = apply_block(content, search, replace)

    # Should x go before or after "b = 2"? SEARCH does not say.
    assert outcome.status == "refused"
    assert "REPLACE adds lines at SEARCH line 3" in outcome.reason


def test_a_search_far_from_the_file_is_refused_with_its_best_score():
    search = lines(
        "def load(path):",
        "    import json",
        "    with open(path, 'rb') as fh:",
        "        raw = fh.read()",
        "    return json.loads(raw)",
    )

    outcome = apply_block(MODULE, search, search.replace("json.loads", "json.load"))

    assert outcome.status == "refused"
    assert outcome.reason.startswith("SEARCH not found in the file: the closest text, at line 4")
    assert "needs 0.7" in outcome.reason


def test_a_near_tie_between_two_similar_functions_is_refused():
    # The distinguishing line is the one SEARCH lacks: both functions fit as well.
    search = lines(
        "        if not items:",
        "            return None",
        "        self.log(value)",
        "        return value",
    )

    outcome = apply_block(TWINS, search, search.replace("return value", "return value or 0"))

    assert outcome.status == "refused"
    assert outcome.reason.startswith("ambiguous: similar text at line")


def test_naive_fuzzy_would_pick_the_wrong_twin_but_the_block_is_refused():
    # SEARCH quotes `first` from memory with a wrong index: `last` matches it better than
    # `first` does. Changing the line that is not in the file must not land in `last`.
    search = lines(
        "    def first(self, items):",
        "        if not items:",
        "            return None",
        "        value = items[-1]",
        "        self.log(value)",
    )

    outcome = apply_block(TWINS, search, search.replace("items[-1]", "items[1]"))

    assert outcome.status == "refused"
    assert outcome.text is None


def test_a_clear_winner_between_two_similar_functions_is_applied():
    search = lines(
        "    def last(self, items):",
        "        if not items:",
        "            return None",
        "        # the last one",
        "        value = items[-1]",
    )

    outcome = apply_block(TWINS, search, search.replace("return None", "raise IndexError"))

    assert outcome.how == "fuzzy"
    assert outcome.text == TWINS.replace(
        "items):\n        if not items:\n            return None\n        value = items[-1]",
        "items):\n        if not items:\n            raise IndexError\n        value = items[-1]",
    )


def test_replace_that_repeats_the_lines_after_search_is_refused():
    # SEARCH stops a line short, so REPLACE would write "return data" twice.
    outcome = apply_block(
        MODULE,
        lines("def load(path):", "    with open(path) as handle:", "        data = handle.read()"),
        lines(
            "def load(path):",
            "    with open(path) as handle:",
            "        data = handle.read().strip()",
            "    return data",
        ),
    )

    assert outcome.status == "refused"
    assert "already follow SEARCH" in outcome.reason


def test_search_equal_to_replace_is_applied_as_no_change():
    outcome = apply_block(MODULE, lines("import os"), lines("import os"))

    assert outcome.status == "applied"
    assert outcome.text == MODULE
    assert outcome.reason.startswith("no change")


def test_an_empty_search_on_an_existing_file_is_refused():
    outcome = apply_block(MODULE, "", "print('hi')\n")

    assert outcome.status == "refused"
    assert outcome.reason == "SEARCH is empty: only new files may be created this way"


def test_an_empty_search_on_an_empty_file_fills_it():
    outcome = apply_block("", "", "print('hi')\n")

    assert (outcome.how, outcome.text) == ("created", "print('hi')\n")


def test_binary_content_is_refused():
    outcome = apply_block("abc\x00def\n", "abc\n", "x\n")

    assert (outcome.status, outcome.reason) == ("refused", "binary file")


def _fastest(action, runs: int = 5) -> float:
    """The shortest of a few timed runs: a run the scheduler interrupted does not count."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def test_huge_files_and_searches_are_refused_at_once():
    huge_file = "x = 1\n" * 1_000_000
    huge_search = "a" * 200_001

    too_big = apply_block(huge_file, "x = 1\n", "x = 2\n")
    too_long = apply_block(MODULE, huge_search, "b\n")

    assert too_big.reason.startswith("file too large")
    assert too_long.reason.startswith("SEARCH too large")
    # Refused on their sizes alone, before any work on the text: far quicker than a single
    # pass over the file's lines, measured here on the same machine at the same moment (so
    # a busy machine slows both alike).
    refusing = _fastest(lambda: apply_block(huge_file, "x = 1\n", "x = 2\n"))
    refusing += _fastest(lambda: apply_block(MODULE, huge_search, "b\n"))
    one_pass = _fastest(huge_file.splitlines, runs=3)
    assert refusing < one_pass / 10


def test_pathological_repetition_stays_fast():
    content = "x = 1\n" * 700_000
    started = time.monotonic()

    ambiguous = apply_block(content, "x = 1\n" * 50, "y\n")
    missing = apply_block(content, "x = 1\n" * 900 + "z = 2\n", "y\n")

    assert time.monotonic() - started < 5
    assert ambiguous.reason.startswith("ambiguous: found 1000 or more times")
    assert missing.status == "refused"


def test_the_same_input_gives_the_same_outcome():
    search = lines(
        "    def last(self, items):",
        "        if not items:",
        "        # note",
        "            return None",
    )

    outcomes = {apply_block(TWINS, search, search.replace("None", "0")) for _ in range(3)}

    assert len(outcomes) == 1


def test_an_edit_that_depends_on_which_repeated_line_is_meant_is_refused():
    content = lines(
        "def check(value):",
        "    value = normalise(value)",
        "    seen.add(value)",
        "    if isinstance(value, list):",
        "        pass",
        "    elif isinstance(value, dict):",
        "        pass",
        "    return value",
    )
    # The elif line is missing, and nothing after the two pass lines pins them down: REPLACE
    # may turn the first into log(value), or delete the second and add log(value) before
    # the first. On the file, with the elif between them, those differ.
    search = lines(
        "def check(value):",
        "    value = normalise(value)",
        "    seen.add(value)",
        "    if isinstance(value, list):",
        "        pass",
        "        pass",
    )
    replace = lines(
        "def check(value):",
        "    value = normalise(value)",
        "    seen.add(value)",
        "    if isinstance(value, list):",
        "        log(value)",
        "        pass",
    )

    outcome = apply_block(content, search, replace)

    assert outcome.status == "refused"
    assert "repeat next to lines of the file that SEARCH does not show" in outcome.reason


def test_replace_that_repeats_the_lines_before_search_is_refused():
    outcome = apply_block(
        MODULE,
        lines("    with open(path) as handle:", "        data = handle.read()"),
        lines("def load(path):", "    with open(path) as handle:", "        data = handle.read(1)"),
    )

    assert outcome.status == "refused"
    assert "already come before SEARCH" in outcome.reason


def test_lines_added_before_a_made_up_last_line_go_after_the_real_ones():
    search = lines(
        "def save(path, data):",
        '    with open(path, "w") as handle:',
        "        handle.write(data)",
        "        handle.close_all_the_things()",
    )
    replace = lines(
        "def save(path, data):",
        '    with open(path, "w") as handle:',
        "        handle.write(data)",
        "        handle.flush()",
        "        handle.close_all_the_things()",
    )

    outcome = apply_block(MODULE, search, replace)

    assert outcome.how == "fuzzy"
    assert outcome.text == MODULE.replace(
        "handle.write(data)\n", "handle.write(data)\n        handle.flush()\n"
    )


def test_a_stale_context_line_is_kept_as_the_file_has_it():
    # An earlier block renamed `data` in the first line; this block still quotes the old
    # line as context and changes another one.
    content = MODULE.replace("data = handle.read()", "contents = handle.read()")
    search = lines(
        "def load(path):",
        "    with open(path) as handle:",
        "        data = handle.read()",
        "    return data",
    )
    replace = lines(
        "def load(path):",
        "    with open(path, encoding='utf-8') as handle:",
        "        data = handle.read()",
        "    return data",
    )

    outcome = apply_block(content, search, replace)

    assert outcome.how == "fuzzy"
    assert outcome.text == content.replace(
        "with open(path) as", "with open(path, encoding='utf-8') as"
    )
    assert "contents = handle.read()" in outcome.text


def test_new_lines_in_a_file_with_mixed_line_ends_use_the_usual_one():
    content = "a\r\nb\r\nc\nd\r\n"

    outcome = apply_block(content, "b\nc\n", "b\nx\nc\n")

    assert outcome.text == "a\r\nb\r\nx\r\nc\nd\r\n"


def test_deleting_one_of_two_equal_lines_across_a_gap_is_refused():
    content = lines('"""', "Serialize data to JSON Lines.", '"""', "", "import json", "", "x = 1")
    # SEARCH skips the middle line, so either quote line could be the one deleted.
    search = lines('"""', '"""', "", "import json", "", "x = 1")
    replace = lines('"""', "", "import json", "", "x = 1")

    outcome = apply_block(content, search, replace)

    assert outcome.status == "refused"


WIDGETS = """\
class Widget:
    def __deepcopy__(self, memo):
        obj = copy.copy(self)
        obj.attrs = self.attrs.copy()
        memo[id(self)] = obj
        return obj


class ChoiceWidget(Widget):
    def __deepcopy__(self, memo):
        obj = copy.copy(self)
        obj.attrs = self.attrs.copy()
        obj.choices = copy.copy(self.choices)
        memo[id(self)] = obj
        return obj
"""


def test_an_exact_match_is_refused_when_another_place_has_the_same_lines_and_one_more():
    # Meant for ChoiceWidget with the choices line dropped, or for Widget? SEARCH cannot say.
    search = lines(
        "    def __deepcopy__(self, memo):",
        "        obj = copy.copy(self)",
        "        obj.attrs = self.attrs.copy()",
        "        memo[id(self)] = obj",
    )

    outcome = apply_block(WIDGETS, search, search.replace("copy.copy(self)", "super().copy()"))

    assert outcome.status == "refused"
    assert outcome.reason.startswith("ambiguous: SEARCH matches at line 2, but line 10 holds")


def test_an_exact_match_that_includes_the_distinguishing_line_is_applied():
    search = lines(
        "        obj.attrs = self.attrs.copy()",
        "        obj.choices = copy.copy(self.choices)",
    )

    outcome = apply_block(WIDGETS, search, search.replace("copy.copy(", "list("))

    assert outcome.how == "exact"
    assert "obj.choices = list(self.choices)" in outcome.text


ARGTYPES = """\
get_point = void_output(
    lgdal.OGR_G_GetPointZM,
    [
        c_void_p,
        c_int,
        POINTER(c_double),
        POINTER(c_double),
        POINTER(c_double),
        POINTER(c_double),
    ],
    errcheck=False,
)
"""


def test_changing_one_of_several_equal_lines_when_search_has_one_fewer_is_refused():
    search = ARGTYPES.replace("        POINTER(c_double),\n", "", 1)
    replace = search.replace(
        "POINTER(c_double),\n        POINTER(c_double),\n        POINTER(c_double),\n",
        "POINTER(c_double),\n        POINTER(c_float),\n        POINTER(c_double),\n",
    )

    outcome = apply_block(ARGTYPES, search, replace)

    assert outcome.status == "refused"
    assert outcome.reason.startswith("ambiguous: the block can be read in more than one way")


def test_changing_a_line_away_from_the_equal_lines_is_applied_all_the_same():
    search = ARGTYPES.replace("        POINTER(c_double),\n", "", 1)

    outcome = apply_block(ARGTYPES, search, search.replace("c_int", "c_uint"))

    assert outcome.how == "fuzzy"
    assert outcome.text == ARGTYPES.replace("c_int", "c_uint")


# REPLACE adds a method whose last lines (") ⏎") are the lines SEARCH starts with, and
# SEARCH leaves out `check()`, which follows them in the file: the new lines can go before
# or after the repeated ones, and `check()` ends up in a different method in each.
SLIDING = """\
class A:
    def a(self):
        x(
            1,
        )
        check()


class B:
    pass
"""
SLIDING_SEARCH = """\
            1,
        )


class B:
"""
SLIDING_REPLACE = """\
            1,
        )

    def new(self):
        y(
            1,
        )


class B:
"""
# `check()` stays in `a`, the new method after it.
SLIDING_RIGHT = SLIDING.replace(
    "        check()\n",
    "        check()\n\n    def new(self):\n        y(\n            1,\n        )\n",
)
# `check()` moved to the end of the new method.
SLIDING_WRONG = SLIDING.replace(
    "        )\n        check()\n",
    "        )\n\n    def new(self):\n        y(\n            1,\n        )\n        check()\n",
)


def bottom_up(text: str) -> str:
    return "".join(line + "\n" for line in reversed(text.splitlines()))


def test_a_change_that_could_land_on_either_side_of_a_left_out_line_is_never_misplaced():
    outcome = apply_block(SLIDING, SLIDING_SEARCH, SLIDING_REPLACE)

    assert outcome.text != SLIDING_WRONG
    assert outcome.text in (SLIDING_RIGHT, None)


def test_a_change_that_could_land_on_either_side_of_a_left_out_line_is_refused():
    outcome = apply_block(SLIDING, SLIDING_SEARCH, SLIDING_REPLACE)

    assert outcome.status == "refused"
    assert outcome.reason == (
        "ambiguous: REPLACE repeats lines at the edges of what it changes, so the change "
        "could land in two places relative to line 6, which SEARCH leaves out"
    )


def test_the_same_block_read_bottom_up_is_never_misplaced_either():
    # Now REPLACE's new lines start with the lines SEARCH ends with, and difflib's own
    # diff puts them after the left-out line.
    content, search, replace = map(bottom_up, (SLIDING, SLIDING_SEARCH, SLIDING_REPLACE))

    outcome = apply_block(content, search, replace)

    assert outcome.text != bottom_up(SLIDING_WRONG)
    assert outcome.text in (bottom_up(SLIDING_RIGHT), None)
    assert outcome.reason.startswith("ambiguous: REPLACE repeats lines at the edges")


def test_repeated_lines_at_the_edges_of_a_change_away_from_a_left_out_line_are_applied():
    # SEARCH leaves out `prepare()`, far from where the new method goes: every place the
    # repeated lines allow gives the same text.
    content = SLIDING.replace("        x(\n", "        prepare()\n        x(\n").replace(
        "        check()\n", ""
    )
    search = "    def a(self):\n        x(\n" + SLIDING_SEARCH
    replace = "    def a(self):\n        x(\n" + SLIDING_REPLACE

    outcome = apply_block(content, search, replace)

    assert outcome.how == "fuzzy"
    assert outcome.text == content.replace(
        "        )\n\n\nclass B:",
        "        )\n\n    def new(self):\n        y(\n            1,\n        )\n\n\nclass B:",
    )
