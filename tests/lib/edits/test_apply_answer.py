from __future__ import annotations

import pytest

from qweb.lib.edits import (
    BINARY_FILE,
    FOLDER,
    SUBMODULE,
    SYMLINK,
    apply_answer,
    parse_answer,
)

FENCE = "```"


def block(path: str, search: str, replace: str) -> str:
    return (
        f"{path}\n{FENCE}python\n<<<<<<< SEARCH\n{search}=======\n{replace}"
        f">>>>>>> REPLACE\n{FENCE}\n\n"
    )


class Repo:
    """The base files of a repository, recording which paths were read."""

    def __init__(self, files):
        self.files = files
        self.reads = []

    def __call__(self, path):
        self.reads.append(path)
        return self.files.get(path)


def apply(answer, files):
    return apply_answer(parse_answer(answer), Repo(files))


class Tree(Repo):
    """A base tree that also answers for folders, as a real repository reader does."""

    def __call__(self, path):
        self.reads.append(path)
        if path in self.files:
            return self.files[path]
        return FOLDER if any(p.startswith(f"{path}/") for p in self.files) else None


BASE = {
    "sub/util.py": "def util():\n    pass\n",
    "conf.d/a.py": "a = 1\n",
    "conf.d/deep/b.py": "b = 1\n",
    "docs/link": SYMLINK,
    "vendor/lib": SUBMODULE,
    "logo.png": BINARY_FILE,
    "top.py": "top = 1\n",
}


def on_base(answer):
    return apply_answer(parse_answer(answer), Tree(BASE))


def test_it_applies_blocks_to_several_files_in_answer_order():
    outcome = apply(
        block("a.py", "x = 1\n", "x = 2\n") + block("b.py", "y = 1\n", "y = 2\n"),
        {"a.py": "x = 1\n", "b.py": "y = 1\n"},
    )

    assert outcome.files == {"a.py": "x = 2\n", "b.py": "y = 2\n"}
    assert [(r.index, r.path, r.status, r.how, r.line) for r in outcome.results] == [
        (0, "a.py", "applied", "exact", 3),
        (1, "b.py", "applied", "exact", 12),
    ]
    assert (outcome.applied, outcome.refused, outcome.success_rate) == (2, 0, 1.0)


def test_later_blocks_see_the_results_of_earlier_ones():
    outcome = apply(
        block("a.py", "x = 1\n", "x = 2\n") + block("a.py", "x = 2\ny = 1\n", "x = 3\ny = 1\n"),
        {"a.py": "x = 1\ny = 1\n"},
    )

    assert outcome.files == {"a.py": "x = 3\ny = 1\n"}
    assert [r.status for r in outcome.results] == ["applied", "applied"]


def test_a_refused_block_leaves_the_other_blocks_of_the_file_applied():
    outcome = apply(
        block("a.py", "nothing like this\n", "z\n") + block("a.py", "y = 1\n", "y = 2\n"),
        {"a.py": "x = 1\ny = 1\n"},
    )

    assert outcome.files == {"a.py": "x = 1\ny = 2\n"}
    assert [r.status for r in outcome.results] == ["refused", "applied"]
    assert outcome.success_rate == 0.5


def test_an_empty_search_creates_a_new_file():
    outcome = apply(block("pkg/new.py", "", "VALUE = 1\n"), {})

    assert outcome.files == {"pkg/new.py": "VALUE = 1\n"}
    assert outcome.results[0].how == "created"


def test_an_empty_search_fills_an_existing_empty_file():
    outcome = apply(block("pkg/__init__.py", "", "VALUE = 1\n"), {"pkg/__init__.py": ""})

    assert outcome.files == {"pkg/__init__.py": "VALUE = 1\n"}


def test_an_empty_search_on_an_existing_file_is_refused():
    outcome = apply(block("a.py", "", "VALUE = 1\n"), {"a.py": "x = 1\n"})

    assert outcome.files == {}
    assert outcome.results[0].reason.startswith("SEARCH is empty")


def test_creating_the_same_new_file_twice_refuses_the_second():
    outcome = apply(block("n.py", "", "a\n") + block("n.py", "", "b\n"), {})

    assert outcome.files == {"n.py": "a\n"}
    assert [r.status for r in outcome.results] == ["applied", "refused"]


def test_an_edit_to_a_missing_file_is_refused():
    outcome = apply(block("nope.py", "x\n", "y\n"), {})

    assert outcome.results[0].reason == "no such file"
    assert outcome.files == {}


def test_unsafe_paths_are_refused_without_reading_them():
    repo = Repo({"a.py": "x\n"})
    answer = block("../outside.py", "x\n", "y\n") + block(".git/config", "", "[core]\n")

    outcome = apply_answer(parse_answer(answer), repo)

    assert repo.reads == []
    assert [r.reason for r in outcome.results] == [
        "unsafe path: path contains '..'",
        "unsafe path: path is inside .git",
    ]


def test_paths_are_cleaned_before_reading():
    repo = Repo({"a/b.py": "x\n"})

    outcome = apply_answer(parse_answer(block("./a/b.py", "x\n", "y\n")), repo)

    assert repo.reads == ["a/b.py"]
    assert outcome.files == {"a/b.py": "y\n"}


def test_delete_removes_the_file_and_later_edits_to_it_are_refused():
    outcome = apply(
        "DELETE old.py\n\n" + block("old.py", "x\n", "y\n"),
        {"old.py": "x\n"},
    )

    assert outcome.files == {"old.py": None}
    assert [(r.how, r.status) for r in outcome.results] == [
        ("deleted", "applied"),
        (None, "refused"),
    ]
    assert outcome.results[1].reason == "the file was deleted earlier in this answer"


def test_deleting_a_missing_file_is_refused():
    outcome = apply("DELETE ghost.py\n", {})

    assert outcome.results[0].reason == "no such file"
    assert outcome.files == {}


def test_rename_comes_first_and_later_blocks_edit_the_new_path():
    outcome = apply(
        "RENAME old.py -> new.py\n\n" + block("new.py", "x = 1\n", "x = 2\n"),
        {"old.py": "x = 1\n"},
    )

    assert outcome.files == {"new.py": "x = 2\n", "old.py": None}
    assert outcome.renamed == {"old.py": "new.py"}
    assert [r.how for r in outcome.results] == ["renamed", "exact"]


def test_blocks_before_a_rename_edit_the_old_path_and_blocks_after_it_cannot():
    outcome = apply(
        block("old.py", "x = 1\n", "x = 2\n")
        + "RENAME old.py -> new.py\n\n"
        + block("old.py", "x = 2\n", "x = 3\n"),
        {"old.py": "x = 1\n"},
    )

    assert outcome.files == {"old.py": None, "new.py": "x = 2\n"}
    assert outcome.results[2].status == "refused"
    assert "renamed to new.py earlier in this answer" in outcome.results[2].reason


def test_renaming_onto_an_existing_file_is_refused():
    outcome = apply("RENAME a.py -> b.py\n", {"a.py": "a\n", "b.py": "b\n"})

    assert outcome.results[0].reason == "cannot rename to b.py: that file exists"
    assert outcome.files == {}


def test_chained_renames_collapse():
    outcome = apply("RENAME a.py -> b.py\nRENAME b.py -> c.py\n", {"a.py": "a\n"})

    assert outcome.renamed == {"a.py": "c.py"}
    assert outcome.files == {"a.py": None, "c.py": "a\n"}


def test_blocks_on_binary_files_are_refused():
    outcome = apply(
        block("logo.png", "x\n", "y\n") + "RENAME logo.png -> img/logo.png\n",
        {"logo.png": BINARY_FILE},
    )

    assert [r.reason for r in outcome.results] == [
        "binary file",
        "binary file: it cannot be renamed here",
    ]
    assert outcome.files == {}


def test_a_binary_file_can_be_deleted():
    outcome = apply("DELETE logo.png\n", {"logo.png": BINARY_FILE})

    assert outcome.files == {"logo.png": None}


def test_text_with_nul_bytes_counts_as_binary():
    outcome = apply(block("data.bin", "x\n", "y\n"), {"data.bin": "x\n\x00\x01"})

    assert outcome.results[0].reason == "binary file"


def test_parse_problems_become_refused_results_in_answer_order():
    answer = block("a.py", "x\n", "y\n") + "b.py\n<<<<<<< SEARCH\nx\n=======\ny\n"

    outcome = apply(answer, {"a.py": "x\n", "b.py": "x\n"})

    assert outcome.files == {"a.py": "y\n"}
    assert [(r.index, r.path, r.status) for r in outcome.results] == [
        (0, "a.py", "applied"),
        (-1, "b.py", "refused"),
    ]
    assert "not closed" in outcome.results[1].reason
    assert outcome.success_rate == 0.5


def test_an_answer_without_operations_has_a_zero_success_rate():
    outcome = apply("No changes needed.\n", {})

    assert (outcome.files, outcome.results, outcome.success_rate) == ({}, [], 0.0)


def test_a_crlf_answer_edits_a_crlf_file_and_keeps_it_crlf():
    answer = block("w.py", "a = 1\nb = 2\n", "a = 1\nb = 3\n").replace("\n", "\r\n")

    outcome = apply(answer, {"w.py": "a = 1\r\nb = 2\r\nc = 3\r\n"})

    assert outcome.files == {"w.py": "a = 1\r\nb = 3\r\nc = 3\r\n"}
    assert outcome.results[0].how == "exact"


# -- nothing is written into, through or in place of what is there ----------------------


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("sub/util.py/x.py", "cannot create sub/util.py/x.py: sub/util.py is a file"),
        ("logo.png/x.py", "cannot create logo.png/x.py: logo.png is a file"),
        ("docs/link/x.py", "cannot create docs/link/x.py: docs/link is a symbolic link"),
        ("vendor/lib/x.py", "cannot create vendor/lib/x.py: vendor/lib is a submodule"),
        ("conf.d", "conf.d is a folder, not a file"),
        ("conf.d/deep", "conf.d/deep is a folder, not a file"),
        ("docs/link", "docs/link is a symbolic link; qweb does not change it"),
        ("vendor/lib", "vendor/lib is a submodule; qweb does not change it"),
    ],
)
def test_a_file_is_never_created_inside_or_in_place_of_what_is_there(path, reason):
    outcome = on_base(block(path, "", "x = 1\n"))

    assert outcome.files == {}
    [result] = outcome.results
    assert result.status == "refused"
    assert result.reason.startswith(reason)


@pytest.mark.parametrize("path", ["docs/link", "vendor/lib", "conf.d"])
def test_links_submodules_and_folders_are_neither_edited_nor_deleted(path):
    outcome = on_base(block(path, "x\n", "y\n") + f"DELETE {path}\n")

    assert outcome.files == {}
    assert [r.status for r in outcome.results] == ["refused", "refused"]
    assert all(r.reason.startswith(path) for r in outcome.results)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("sub/util.py/top.py", "cannot rename to sub/util.py/top.py: sub/util.py is a file"),
        ("docs/link/top.py", "cannot rename to docs/link/top.py: docs/link is a symbolic link"),
        ("conf.d", "cannot rename to conf.d: conf.d is a folder"),
        ("docs/link", "cannot rename to docs/link: docs/link is a symbolic link"),
        ("vendor/lib", "cannot rename to vendor/lib: vendor/lib is a submodule"),
        ("logo.png", "cannot rename to logo.png: that file exists"),
    ],
)
def test_a_rename_never_lands_inside_or_in_place_of_what_is_there(target, reason):
    outcome = on_base(f"RENAME top.py -> {target}\n")

    assert outcome.files == {}
    assert outcome.results[0].reason.startswith(reason)


def test_links_and_submodules_are_not_renamed():
    outcome = on_base("RENAME docs/link -> docs/other\nRENAME vendor/lib -> vendor/lib2\n")

    assert outcome.files == {}
    assert [r.reason for r in outcome.results] == [
        "docs/link is a symbolic link; qweb does not change it",
        "vendor/lib is a submodule; qweb does not change it",
    ]


def test_files_created_by_the_answer_are_in_the_way_of_later_ones():
    # A reader that knows no folders at all: what the answer itself made still counts.
    outcome = apply(
        block("new.py", "", "n = 1\n")
        + block("new.py/x.py", "", "x = 1\n")
        + block("mk.d/x.py", "", "x = 1\n")
        + block("mk.d", "", "m = 1\n")
        + "RENAME old.py -> mk.d\n",
        {"old.py": "o = 1\n"},
    )

    assert outcome.files == {"new.py": "n = 1\n", "mk.d/x.py": "x = 1\n"}
    assert [r.reason for r in outcome.results if r.status == "refused"] == [
        "cannot create new.py/x.py: new.py is a file, so nothing can be created inside it",
        "cannot create mk.d: mk.d is a folder: mk.d/x.py was created earlier in this answer",
        "cannot rename to mk.d: mk.d is a folder: mk.d/x.py was created earlier in this answer",
    ]


def test_a_file_deleted_earlier_in_the_answer_can_become_a_folder():
    outcome = on_base("DELETE sub/util.py\n\n" + block("sub/util.py/x.py", "", "x = 1\n"))

    # The commit deletes sub/util.py, and the results say so.
    assert outcome.files == {"sub/util.py": None, "sub/util.py/x.py": "x = 1\n"}
    assert [r.how for r in outcome.results] == ["deleted", "created"]


def test_a_folder_stays_a_folder_even_when_the_answer_deletes_its_files():
    outcome = on_base(
        "DELETE conf.d/a.py\nDELETE conf.d/deep/b.py\n\n" + block("conf.d", "", "p\n")
    )

    assert outcome.files == {"conf.d/a.py": None, "conf.d/deep/b.py": None}
    assert outcome.results[2].reason == "conf.d is a folder, not a file"


def test_edits_of_existing_files_read_nothing_else():
    tree = Tree(BASE)

    outcome = apply_answer(parse_answer(block("conf.d/deep/b.py", "b = 1\n", "b = 2\n")), tree)

    assert outcome.files == {"conf.d/deep/b.py": "b = 2\n"}
    assert tree.reads == ["conf.d/deep/b.py"]


def inside_src(path):
    return None if path.startswith("src/") else "outside the scope"


def test_paths_that_may_not_be_written_are_refused_with_the_callers_reason():
    outcome = apply_answer(
        parse_answer(
            block("src/a.py", "a\n", "b\n") + block("docs/x.md", "", "x\n") + "DELETE top.py\n"
        ),
        Repo({"src/a.py": "a\n", "top.py": "t\n"}),
        writable=inside_src,
    )

    assert outcome.files == {"src/a.py": "b\n"}
    assert [r.reason for r in outcome.results] == ["", "outside the scope", "outside the scope"]


def test_a_rename_across_the_writable_boundary_is_refused_whole():
    # Before: the old file was deleted and the new one dropped, or the other way round.
    outcome = apply_answer(
        parse_answer("RENAME src/a.py -> docs/a.py\nRENAME top.py -> src/top.py\n"),
        Repo({"src/a.py": "a\n", "top.py": "t\n"}),
        writable=inside_src,
    )

    assert outcome.files == {}
    assert [r.reason for r in outcome.results] == [
        "cannot rename to docs/a.py: outside the scope",
        "outside the scope",
    ]
