"""The one rule for tree paths, checked against git's own ``fsck`` on the same names."""

from __future__ import annotations

import os
import subprocess

import pytest

from qweb.lib.gitpaths import path_refusal

# Names that reach .git on some filesystem; git fsck calls each "hasDotgit".
GIT_DIR_ALIASES = [
    ".git",
    ".GIT",
    ".Git",
    ".git.",
    ".git..",
    ".git ",
    ".git. .",
    "git~1",
    "GIT~1",
    "Git~1. ",
    ".git::$INDEX_ALLOCATION",
    ".git:stream",
    "git~1:$DATA",
    ".g\u200cit",
    ".gi\u200dt",
    "\u200e.git",
    ".git\u200f",
    ".\u202agit",
    ".g\u202eit",
    ".gi\u206at",
    ".git\u206f",
    "\ufeff.git",
    ".G\u200cI\ufeffT",
]
# Names that look close but are ordinary names everywhere; git accepts them too.
ORDINARY_NAMES = [
    ".gitignore",
    ".github",
    ".gitx",
    ".git.x",
    "git",
    "git~2",
    "git~10",
    "xgit~1",
    ".g it",
    " .git",
    ".g\u200bit",  # ZERO WIDTH SPACE is not one HFS+ ignores
    ".g\u200cit.",  # ignored on HFS+, but the trailing dot is not; NTFS keeps U+200C
    "g\u0130t~1",
]
# Symbolic links git refuses because it would read them as .gitmodules ("gitmodulesSymlink").
GITMODULES_ALIASES = [
    ".gitmodules",
    ".GITMODULES",
    ".gitmodules.",
    ".gitmodules . ",
    ".gitmodules:x",
    "gitmod~1",
    "GITMOD~4",
    "gi7eba~1",
    "GI7EB~12",
    "gi7e~123",
    ".git\u200cmodules",
]
ORDINARY_LINKS = [".gitmodulesx", "gitmod~5", "gitmod~12", "gi7eba~1x", "gitmodules", "x"]


def _git(repo, *args, data=None):
    env = {"PATH": os.environ["PATH"], "HOME": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(
        ["git", "--git-dir", str(repo), *args], input=data, capture_output=True, env=env
    )


def _fsck_complaint(tmp_path, name, *, symlink=False):
    """git fsck --strict's complaint about a tree holding ``name`` (empty: none)."""
    repo = tmp_path / "probe.git"
    _git(repo, "init", "--bare", "-q")
    blob = _git(repo, "hash-object", "-w", "--stdin", data=b"x").stdout.strip()
    if symlink:
        entry = b"120000 blob " + blob + b"\t" + name.encode()
    else:
        inner = _git(repo, "mktree", data=b"100644 blob " + blob + b"\tconfig\n").stdout.strip()
        entry = b"040000 tree " + inner + b"\t" + name.encode()
    tree = _git(repo, "mktree", data=entry + b"\n").stdout.strip()
    commit = _git(repo, "commit-tree", "-m", "probe", tree.decode()).stdout.strip()
    _git(repo, "update-ref", "refs/heads/main", commit.decode())
    result = _git(repo, "fsck", "--strict", "--no-dangling")
    return (result.stdout + result.stderr).decode() if result.returncode else ""


@pytest.mark.parametrize("name", GIT_DIR_ALIASES)
def test_names_that_reach_dot_git_anywhere_are_refused_as_git_does(tmp_path, name):
    assert "hasDotgit" in _fsck_complaint(tmp_path, name)

    reason = path_refusal(f"{name}/config")
    assert reason is not None and reason.startswith("is inside .git")
    assert path_refusal(f"src/{name}/hooks/post-checkout") == reason


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_names_that_only_look_like_dot_git_are_kept_as_git_keeps_them(tmp_path, name):
    assert _fsck_complaint(tmp_path, name) == ""

    assert path_refusal(f"{name}/config") is None


@pytest.mark.parametrize("name", GITMODULES_ALIASES)
def test_a_symlink_git_would_read_as_gitmodules_is_refused(tmp_path, name):
    assert "gitmodulesSymlink" in _fsck_complaint(tmp_path, name, symlink=True)

    assert "would read as .gitmodules" in path_refusal(name, symlink=True)
    assert "would read as .gitmodules" in path_refusal(f"sub/{name}", symlink=True)
    assert path_refusal(name) is None  # a regular .gitmodules file is fine


@pytest.mark.parametrize("name", ORDINARY_LINKS)
def test_other_symlinks_are_kept(tmp_path, name):
    assert _fsck_complaint(tmp_path, name, symlink=True) == ""

    assert path_refusal(name, symlink=True) is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        (".git./config", "Windows ignores the trailing dots and spaces of '.git.'"),
        ("GIT~1/config", "'GIT~1' is the Windows short name of .git"),
        (".git::$INDEX_ALLOCATION/x", "a stream of .git"),
        (".g\u200cit/config", "macOS ignores U+200C in '.g\\u200cit'"),
    ],
)
def test_every_alias_says_how_it_reaches_dot_git(path, reason):
    assert reason in path_refusal(path)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "is empty"),
        ("/etc/passwd", "is an absolute path"),
        ("C:/x.py", "starts with a Windows drive letter"),
        ("../x", "contains '..'"),
        ("a/./b", "contains '.'"),
        ("a//b", "has an empty component"),
        ("a/", "has an empty component"),
        ("a\\b", "contains a backslash"),
        ("a\x00b", "contains the control character U+0000"),
        ("a\x9bb", "contains the control character U+009B"),
        ("caf\udce9", "is not UTF-8"),
        ("a" * 256, "has a name longer than 255 bytes"),
        ("a/" * 2048 + "b", "is longer than 4096 bytes"),
    ],
)
def test_it_keeps_the_basic_rules(path, reason):
    assert path_refusal(path) == reason


def test_plain_paths_pass():
    for path in ["a.py", "src/app/models.py", ".github/workflows/ci.yml", "docs/a b.md", "é.txt"]:
        assert path_refusal(path) is None
