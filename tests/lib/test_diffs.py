"""git's unified diffs as data, patches of chosen hunks, and diffs of files outside a repo."""

from __future__ import annotations

import subprocess

import pytest

from qweb.lib.diffs import diff_files, parse_diff

OLD = "".join(f"line {i}\n" for i in range(1, 31))
NEW = OLD.replace("line 2\n", "line two\n").replace("line 28\n", "line twenty-eight\n")


@pytest.fixture
def diff():
    return diff_files(
        {
            "a.txt": (OLD.encode(), NEW.encode()),
            "new.txt": (None, b"fresh\n"),
            "gone.txt": (b"bye\n", None),
        }
    )


def test_files_hunks_and_numbered_lines_are_read_from_gits_diff(diff):
    files = {item.path: item for item in parse_diff(diff)}
    assert {p: f.status for p, f in files.items()} == {
        "a.txt": "modified",
        "new.txt": "added",
        "gone.txt": "deleted",
    }
    modified = files["a.txt"]
    assert modified.reviewed_per_hunk and len(modified.hunks) == 2
    assert (modified.added, modified.removed) == (2, 2)
    first = modified.hunks[0]
    removed = next(line for line in first.lines if line.kind == "remove")
    added = next(line for line in first.lines if line.kind == "add")
    assert (removed.old_no, removed.text) == (2, "line 2")
    assert (added.new_no, added.text) == (2, "line two")
    assert not files["new.txt"].reviewed_per_hunk
    assert files["a.txt"].summary() == {
        "path": "a.txt",
        "old_path": "a.txt",
        "status": "modified",
        "binary": False,
        "added": 2,
        "removed": 2,
        "hunks": 2,
    }


def test_a_patch_of_some_hunks_applies_only_those(diff, tmp_path):
    modified = next(item for item in parse_diff(diff) if item.path == "a.txt")
    (tmp_path / "a.txt").write_text(OLD)
    patch = modified.patch([1])
    subprocess.run(["git", "apply", "-"], input=patch.encode(), cwd=tmp_path, check=True)
    result = (tmp_path / "a.txt").read_text()
    assert "line twenty-eight" in result and "line two\n" not in result
    assert modified.patch([]) == ""
    assert modified.patch() == modified.header + "".join(h.text for h in modified.hunks)


def test_diff_files_refuses_paths_outside_its_folder():
    with pytest.raises(ValueError):
        diff_files({"../escape.txt": (None, b"x")})


def test_no_changes_is_an_empty_diff():
    assert diff_files({}) == ""
    assert diff_files({"same.txt": (b"x\n", b"x\n")}) == ""
