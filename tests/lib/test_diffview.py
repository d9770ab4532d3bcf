"""The diff viewer's rows: highlighted lines on each side, and the side-by-side pairing."""

from __future__ import annotations

from qweb.lib.diffs import diff_files, parse_diff
from qweb.lib.diffview import diff_rows, highlighted_lines, side_by_side

OLD = "def a():\n    return 1\n\n\ndef b():\n    return 2\n"
NEW = "def a():\n    return 10\n\n\ndef b():\n    return 2\n    # done\n"


def _diff():
    return parse_diff(diff_files({"m.py": (OLD.encode(), NEW.encode())}))[0]


def test_rows_carry_each_lines_side_number_and_highlighted_html():
    diff = _diff()
    (hunk,) = diff_rows(diff, highlighted_lines("m.py", OLD), highlighted_lines("m.py", NEW))
    kinds = [(row["line"].kind, row["side"], row["number"]) for row in hunk["lines"]]
    assert ("remove", "old", 2) in kinds
    assert ("add", "new", 2) in kinds
    assert ("add", "new", 7) in kinds
    removed = next(row for row in hunk["lines"] if row["line"].kind == "remove")
    assert '<span class="mi">1</span>' in removed["html"]
    assert all(row["threads"] == [] and row["findings"] == [] for row in hunk["lines"])


def test_a_change_block_is_paired_removed_beside_added():
    diff = _diff()
    (hunk,) = diff_rows(diff, [], [])
    pairs = [
        (
            p["left"]["line"].kind if p["left"] else None,
            p["right"]["line"].kind if p["right"] else None,
        )
        for p in hunk["pairs"]
    ]
    assert ("remove", "add") in pairs
    assert (None, "add") in pairs  # the added comment has nothing beside it
    assert side_by_side([]) == []


def test_lines_without_highlighting_fall_back_to_plain_text():
    (hunk,) = diff_rows(_diff(), [], [])
    assert all(row["html"] is None for row in hunk["lines"])
    assert highlighted_lines("m.py", None) == []
