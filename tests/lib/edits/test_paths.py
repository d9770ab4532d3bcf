from __future__ import annotations

import pytest

from qweb.lib.edits import UnsafePath, clean_path


def test_it_keeps_plain_relative_paths():
    assert clean_path("app/models.py") == "app/models.py"
    assert clean_path("Makefile") == "Makefile"
    assert clean_path(".github/workflows/ci.yml") == ".github/workflows/ci.yml"
    assert clean_path("docs/a file with spaces.md") == "docs/a file with spaces.md"


def test_it_drops_dot_components():
    assert clean_path("./a/b") == "a/b"
    assert clean_path("a/./b") == "a/b"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty path"),
        ("/etc/passwd", "absolute path"),
        ("C:/Windows/x.py", "drive letter"),
        ("c:x.py", "drive letter"),
        ("../x.py", "'..'"),
        ("a/../../x.py", "'..'"),
        ("a//b.py", "empty component"),
        ("a/b/", "empty component"),
        ("a\\b.py", "backslash"),
        ("a\x00b.py", "control character U+0000"),
        ("a\nb.py", "control character U+000A"),
        ("a\tb.py", "control character U+0009"),
        ("a\x7fb.py", "control character U+007F"),
        ("a\u202eyp.exe", "control character U+202E"),
        (".git/config", "inside .git"),
        ("sub/.git/hooks/pre-commit", "inside .git"),
        (".GIT/hooks/x", "inside .git"),
        (".git", "inside .git"),
        (".git./config", "inside .git"),
        ("GIT~1/config", "inside .git"),
        (".", "names no file"),
        ("./.", "names no file"),
    ],
)
def test_it_refuses_unsafe_paths(path, reason):
    with pytest.raises(UnsafePath) as raised:
        clean_path(path)

    assert reason in raised.value.reason


def test_it_refuses_paths_over_4096_bytes():
    assert clean_path("a/" * 2047 + "b") == "a/" * 2047 + "b"
    with pytest.raises(UnsafePath, match="longer than 4096 bytes"):
        clean_path("é" * 2049)


def test_gitignore_and_similar_names_are_not_the_git_folder():
    assert clean_path(".gitignore") == ".gitignore"
    assert clean_path("a/.github/x") == "a/.github/x"
    assert clean_path("git/x") == "git/x"
