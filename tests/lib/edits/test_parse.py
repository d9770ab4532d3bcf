from __future__ import annotations

from qweb.lib.edits import DeleteFile, EditBlock, RenameFile, parse_answer

FENCE = "```"


def block(search: str, replace: str) -> str:
    """A SEARCH/REPLACE block; each part is given without its final newline."""
    search = search + "\n" if search else ""
    replace = replace + "\n" if replace else ""
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def test_it_reads_one_block_in_a_fence_with_the_path_above():
    answer = (
        "Here is the fix.\n\napp/models.py\n"
        f"{FENCE}python\n{block('x = 1', 'x = 2')}{FENCE}\n\nThat's all.\n"
    )

    parsed = parse_answer(answer)

    assert parsed.problems == []
    assert parsed.operations == [
        EditBlock(path="app/models.py", search="x = 1\n", replace="x = 2\n", index=0, line=5)
    ]


def test_it_reads_several_blocks_in_one_fence_for_the_same_file():
    answer = f"a.py\n{FENCE}python\n{block('a', 'b')}{block('c', 'd')}{FENCE}\n"

    parsed = parse_answer(answer)

    assert [(op.path, op.search, op.replace, op.index) for op in parsed.operations] == [
        ("a.py", "a\n", "b\n", 0),
        ("a.py", "c\n", "d\n", 1),
    ]


def test_a_path_line_inside_a_fence_switches_file_for_the_next_block():
    answer = f"{FENCE}\na.py\n{block('a', 'b')}b.py\n{block('c', 'd')}{FENCE}\n"

    parsed = parse_answer(answer)

    assert [op.path for op in parsed.operations] == ["a.py", "b.py"]


def test_it_accepts_decorated_path_lines():
    headers = [
        "**app/x.py**",
        "`app/x.py`",
        "app/x.py:",
        "### app/x.py",
        "**`app/x.py`**:",
        "- `app/x.py`",
        "File: app/x.py",
    ]
    for header in headers:
        parsed = parse_answer(f"{header}\n{FENCE}python\n{block('a', 'b')}{FENCE}\n")

        assert [op.path for op in parsed.operations] == ["app/x.py"], header


def test_it_takes_the_path_from_the_fence_info_string():
    parsed = parse_answer(f"Change:\n{FENCE}python app/x.py\n{block('a', 'b')}{FENCE}\n")

    assert [op.path for op in parsed.operations] == ["app/x.py"]


def test_it_takes_a_path_quoted_in_a_short_prose_line():
    parsed = parse_answer(f"Then in `app/x.py`:\n{FENCE}python\n{block('a', 'b')}{FENCE}\n")

    assert [op.path for op in parsed.operations] == ["app/x.py"]


def test_it_reads_a_block_without_any_fence():
    parsed = parse_answer(f"Makefile\n{block('a', 'b')}")

    assert [op.path for op in parsed.operations] == ["Makefile"]


def test_a_block_right_after_another_outside_fences_keeps_its_file():
    parsed = parse_answer(f"a.py\n{block('a', 'b')}\n{block('c', 'd')}")

    assert [op.path for op in parsed.operations] == ["a.py", "a.py"]


def test_a_block_after_prose_needs_its_own_path():
    parsed = parse_answer(f"a.py\n{block('a', 'b')}\nNow the other part:\n{block('c', 'd')}")

    assert [op.path for op in parsed.operations] == ["a.py"]
    assert [(p.path, p.line) for p in parsed.problems] == [(None, 9)]
    assert "without a file path" in parsed.problems[0].reason


def test_an_empty_search_part_reads_as_a_new_file():
    parsed = parse_answer(f"new/mod.py\n{FENCE}python\n{block('', 'print(1)')}{FENCE}\n")

    assert parsed.operations == [
        EditBlock(path="new/mod.py", search="", replace="print(1)\n", index=0, line=3)
    ]


def test_it_reads_delete_and_rename_lines_in_answer_order():
    answer = (
        f"DELETE old/a.py\nRENAME `b.py` -> c/b.py\nc/b.py\n{block('x', 'y')}RENAME d.py → e.py\n"
    )

    parsed = parse_answer(answer)

    assert parsed.operations == [
        DeleteFile(path="old/a.py", index=0, line=1),
        RenameFile(old_path="b.py", new_path="c/b.py", index=1, line=2),
        EditBlock(path="c/b.py", search="x\n", replace="y\n", index=2, line=4),
        RenameFile(old_path="d.py", new_path="e.py", index=3, line=9),
    ]


def test_prose_that_mentions_deleting_is_not_an_operation():
    parsed = parse_answer("Delete the old helper.\nDELETE FROM users;\nDELETE the file x.py\n")

    assert parsed.operations == []
    assert parsed.problems == []


def test_an_unclosed_block_is_a_problem_and_earlier_blocks_are_kept():
    answer = f"a.py\n{block('a', 'b')}b.py\n<<<<<<< SEARCH\nc\n=======\nd\n"

    parsed = parse_answer(answer)

    assert [op.path for op in parsed.operations] == ["a.py"]
    [problem] = parsed.problems
    assert problem.path == "b.py"
    assert problem.line == 8
    assert "not closed" in problem.reason


def test_a_block_interrupted_by_another_is_left_out_and_the_next_one_is_read():
    answer = f"a.py\n<<<<<<< SEARCH\na\n=======\nb\n{block('c', 'd')}"

    parsed = parse_answer(answer)

    assert [(op.path, op.search) for op in parsed.operations] == [("a.py", "c\n")]
    [problem] = parsed.problems
    assert (problem.path, problem.line) == ("a.py", 2)
    assert "another <<<<<<< SEARCH starts at line 6" in problem.reason


def test_a_block_without_its_divider_is_a_problem():
    parsed = parse_answer(f"a.py\n<<<<<<< SEARCH\na\n>>>>>>> REPLACE\nb.py\n{block('c', 'd')}")

    assert [op.path for op in parsed.operations] == ["b.py"]
    [problem] = parsed.problems
    assert problem.path == "a.py"
    assert "no ======= line" in problem.reason


def test_a_stray_replace_marker_is_a_problem():
    parsed = parse_answer("some text\n>>>>>>> REPLACE\n")

    assert parsed.operations == []
    assert [(p.path, p.line) for p in parsed.problems] == [(None, 2)]


def test_a_crlf_answer_reads_like_an_lf_one():
    answer = f"a.py\n{FENCE}python\n{block('x = 1', 'x = 2')}{FENCE}\n"

    assert parse_answer(answer.replace("\n", "\r\n")) == parse_answer(answer)


def test_marker_lines_may_have_spaces_and_five_to_nine_characters():
    answer = "a.py\n<<<<< SEARCH  \nx\n=========\t\ny\n  >>>>>>>>> REPLACE\n"

    parsed = parse_answer(answer)

    assert [(op.search, op.replace) for op in parsed.operations] == [("x\n", "y\n")]


def test_ten_marker_characters_are_not_a_marker():
    parsed = parse_answer("a.py\n<<<<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n")

    assert parsed.operations == []
    assert len(parsed.problems) == 1


def test_a_seven_equals_divider_wins_over_a_content_underline():
    answer = (
        "docs/x.txt\n<<<<<<< SEARCH\nTitle\n=====\n=======\nNew title\n=========\n>>>>>>> REPLACE\n"
    )

    [op] = parse_answer(answer).operations

    assert (op.search, op.replace) == ("Title\n=====\n", "New title\n=========\n")


def test_fences_inside_a_block_are_content():
    answer = (
        f"README.md\n{FENCE}\n<<<<<<< SEARCH\n{FENCE}sh\nmake\n{FENCE}\n=======\n"
        f"make all\n>>>>>>> REPLACE\n{FENCE}\n"
    )

    [op] = parse_answer(answer).operations

    assert op.search == f"{FENCE}sh\nmake\n{FENCE}\n"


def test_prose_only_answers_have_no_operations():
    parsed = parse_answer("I would change the model.\n\n```python\nx = 1\n```\nDone.\n")

    assert parsed.operations == []
    assert parsed.problems == []


def test_an_answer_over_max_chars_is_read_only_up_to_the_cap():
    first = f"a.py\n{block('a', 'b')}"
    answer = first + f"b.py\n{block('c', 'd')}" + "x" * 1000

    parsed = parse_answer(answer, max_chars=len(first) + 10)

    assert [op.path for op in parsed.operations] == ["a.py"]
    assert len(parsed.problems) == 1
    assert "over the limit" in parsed.problems[0].reason


def test_a_block_cut_by_max_chars_is_reported_too():
    answer = f"a.py\n{block('a', 'b')}" * 3

    parsed = parse_answer(answer, max_chars=len(answer) - 5)

    assert len(parsed.operations) == 2
    assert sorted(p.reason.split(" ")[0] for p in parsed.problems) == ["the", "the"]
    assert any("not closed" in p.reason for p in parsed.problems)


def test_a_remark_after_the_path_is_not_part_of_it():
    for header in ("app/new.py (new file)", "app/new.py — created", "**app/new.py** (new):"):
        parsed = parse_answer(f"{header}\n{FENCE}python\n{block('', 'x = 1')}{FENCE}\n")

        assert [op.path for op in parsed.operations] == ["app/new.py"], header


def test_underscores_in_paths_are_kept():
    parsed = parse_answer(f"pkg/__init__.py\n{block('a', 'b')}")

    assert [op.path for op in parsed.operations] == ["pkg/__init__.py"]
