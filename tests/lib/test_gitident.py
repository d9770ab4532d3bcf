"""Commit identities from any display name: git's own cleaning, and a fallback, never a refusal."""

from __future__ import annotations

import os
import subprocess

import pytest

from qweb.lib.gitident import FALLBACK_EMAIL, MAX_NAME_CHARS, git_identity
from qweb.lib.gitstore import GIT, BytesEntry, GitStore

NASTY_NAMES = [
    "Alice <alice@corp>",
    '  "Bob, Jr." ',
    "O'Neil.",
    "Dr. X.",
    "Zoë 李",
    "a\\b",
    "x <y> z",
]


def _git_records(tmp_path, name: str, email: str) -> str:
    """The author line git itself writes for an identity given through the environment."""
    store = tmp_path / "oracle.git"
    if not store.exists():
        subprocess.run([GIT, "init", "-q", "--bare", str(store)], check=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": "c",
        "GIT_COMMITTER_EMAIL": "c@example.com",
    }
    git = [GIT, f"--git-dir={store}"]
    tree = subprocess.run(
        [*git, "mktree"], input=b"", capture_output=True, check=True, env=env
    ).stdout
    sha = subprocess.run(
        [*git, "commit-tree", tree.decode().strip()],
        input=b"m",
        capture_output=True,
        check=True,
        env=env,
    ).stdout.decode()
    body = subprocess.run(
        [*git, "cat-file", "commit", sha.strip()], capture_output=True, check=True, env=env
    ).stdout.decode()
    author = next(line for line in body.splitlines() if line.startswith("author "))
    return author.removeprefix("author ").rsplit(" ", 2)[0]


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_names_are_cleaned_the_way_git_cleans_them(tmp_path, name):
    identity = git_identity(name, " <alice@corp>. ")
    assert f"{identity.name} <{identity.email}>" == _git_records(tmp_path, name, " <alice@corp>. ")


def test_a_name_with_an_address_in_it_keeps_the_words_and_loses_the_brackets():
    assert git_identity("Alice <alice@corp>", "alice@corp") == ("Alice alice@corp", "alice@corp")


def test_newlines_and_control_characters_become_single_spaces():
    assert git_identity("Alice\nSmith", "a@b").name == "Alice Smith"
    assert git_identity("Alice\r\n\tSmith\x1b\x7f", "a@b").name == "Alice Smith"
    assert git_identity("Alice\u2028Smith\u0085", "a@b").name == "Alice Smith"


@pytest.mark.parametrize("name", ["", "<>", " <> ", "\n", ".,;:", None])
def test_a_name_with_nothing_left_falls_back_to_the_addresss_local_part(name):
    assert git_identity(name, "alice@corp.example") == ("alice", "alice@corp.example")


def test_an_address_with_brackets_or_newlines_is_cleaned_and_an_empty_one_replaced():
    assert git_identity("A", "<alice@corp>\n").email == "alice@corp"
    assert git_identity("A", "ali<ce@co>rp").email == "alice@corp"
    assert git_identity("A", "<>") == ("A", FALLBACK_EMAIL)
    assert git_identity("", "") == ("unknown", FALLBACK_EMAIL)


def test_a_very_long_name_is_shortened_without_ending_in_crud():
    identity = git_identity("Ada " + "x" * 5000, "a@b")
    assert len(identity.name) == MAX_NAME_CHARS
    assert git_identity("A" * (MAX_NAME_CHARS - 1) + " " + "B" * 10, "a@b").name == "A" * (
        MAX_NAME_CHARS - 1
    )


def test_unpaired_surrogates_do_not_break_encoding():
    identity = git_identity("Ada \ud800", "a@b")
    identity.name.encode()


@pytest.mark.parametrize(
    "name",
    [*NASTY_NAMES, "Alice\nSmith", "<>", "x" * 1000, "\u202eevil", "Ada \ud800", "\x00nul"],
)
def test_every_cleaned_identity_is_accepted_by_each_way_qweb_writes_commits(tmp_path, name):
    store = GitStore.init(tmp_path / "store.git", "main")
    identity = git_identity(name, f"{name}@example.com")
    kwargs = {"author_name": identity.name, "author_email": identity.email, "message": "m"}
    first = store.commit_entries([BytesEntry("a.txt", b"a\n")], branch="main", **kwargs)
    changed = store.commit_changes(
        parent=first, changes={"a.txt": b"b\n"}, ref="refs/qweb/test", **kwargs
    )
    applied = store.commit_tree(store.apply_patch(changed, b""), parents=[changed], **kwargs)
    for sha in (first, changed, applied):
        [info] = store.log(sha, limit=1)
        assert (info.author_name, info.author_email) == identity
