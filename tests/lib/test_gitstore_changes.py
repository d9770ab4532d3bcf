"""GitStore's refactor plumbing: changes on top of a commit, patches, merges, guarded refs."""

from __future__ import annotations

import pytest

from qweb.lib.gitstore import GitStore, GitStoreError
from tests.lib.test_gitstore import commit

IDENTITY = {"author_name": "Ada", "author_email": "ada@example.com"}


@pytest.fixture
def store(tmp_path):
    return GitStore.init(tmp_path / "store.git", "main")


@pytest.fixture
def base(store):
    return commit(
        store,
        {
            "app.py": b"def one():\n    return 1\n\n\ndef two():\n    return 2\n",
            "run.sh": ("100755", b"#!/bin/sh\necho hi\n"),
            "gone.txt": b"bye\n",
        },
    )


def read(store, commit_sha, path):
    item = next(i for i in store.ls_tree(commit_sha, recursive=True) if i.path == path)
    return store.read_blob(item.sha, 1 << 20).data


def test_commit_changes_edits_adds_and_deletes_on_top_of_the_parent(store, base):
    sha = store.commit_changes(
        parent=base,
        changes={"app.py": b"def one():\n    return 10\n", "new.py": b"x = 1\n", "gone.txt": None},
        ref="refs/qweb/changesets/1",
        message="proposal",
        **IDENTITY,
    )
    items = {item.path: item for item in store.ls_tree(sha, recursive=True)}
    assert set(items) == {"app.py", "run.sh", "new.py"}
    assert read(store, sha, "app.py") == b"def one():\n    return 10\n"
    assert items["run.sh"].mode == "100755"  # untouched files, modes and all, carried over
    assert store.resolve("refs/qweb/changesets/1") == sha
    assert store.resolve("main") == base  # no branch moved


def test_commit_changes_keeps_an_edited_files_mode(store, base):
    sha = store.commit_changes(
        parent=base,
        changes={"run.sh": b"#!/bin/sh\necho bye\n"},
        ref="refs/qweb/changesets/2",
        message="m",
        **IDENTITY,
    )
    assert {i.path: i.mode for i in store.ls_tree(sha, recursive=True)}["run.sh"] == "100755"


@pytest.mark.parametrize("ref", ["refs/heads/main", "refs/tags/x", "main"])
def test_commit_changes_only_writes_private_refs(store, base, ref):
    with pytest.raises(GitStoreError):
        store.commit_changes(parent=base, changes={}, ref=ref, message="m", **IDENTITY)


def test_commit_changes_refuses_paths_into_git(store, base):
    with pytest.raises(GitStoreError):
        store.commit_changes(
            parent=base,
            changes={".git/hooks/x": b"x"},
            ref="refs/qweb/c/3",
            message="m",
            **IDENTITY,
        )


@pytest.mark.parametrize("path", [".git./config", "GIT~1/hooks/x", ".g\u200cit/config", "a\\b"])
def test_commit_changes_refuses_paths_that_git_refuses_elsewhere(store, base, path):
    with pytest.raises(GitStoreError, match="cannot be stored"):
        store.commit_changes(
            parent=base, changes={path: b"x"}, ref="refs/qweb/c/5", message="m", **IDENTITY
        )

    assert store.resolve_optional("refs/qweb/c/5") is None


@pytest.fixture
def shaped(store):
    return commit(
        store,
        {
            "sub/util.py": b"def util():\n    pass\n",
            "pkg/a.py": b"a = 1\n",
            "link": ("120000", b"pkg"),
        },
    )


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sub/util.py/x.py": b"x"}, "'sub/util.py' is a file"),
        ({"link/x.py": b"x"}, "'link' is a file"),
        ({"pkg": b"x"}, "'pkg' is a folder"),
        ({"sub": b"x"}, "'sub' is a folder"),
        ({"new": b"x", "new/x.py": b"y"}, "'new' is a file"),
    ],
)
def test_commit_changes_never_replaces_a_file_link_or_folder_it_was_not_asked_to(
    store, shaped, changes, reason
):
    with pytest.raises(GitStoreError, match=reason):
        store.commit_changes(
            parent=shaped, changes=changes, ref="refs/qweb/c/6", message="m", **IDENTITY
        )

    assert store.resolve_optional("refs/qweb/c/6") is None


def test_commit_changes_may_put_a_folder_where_it_deletes_a_file(store, shaped):
    sha = store.commit_changes(
        parent=shaped,
        changes={"sub/util.py": None, "sub/util.py/x.py": b"x = 1\n"},
        ref="refs/qweb/c/7",
        message="m",
        **IDENTITY,
    )

    paths = {item.path for item in store.ls_tree(sha, recursive=True)}
    assert paths == {"sub/util.py/x.py", "pkg/a.py", "link"}


def test_apply_patch_applies_only_the_given_hunks_of_gits_own_diff(store, base):
    proposal = store.commit_changes(
        parent=base,
        changes={"app.py": b"def one():\n    return 11\n\n\ndef two():\n    return 22\n"},
        ref="refs/qweb/c/4",
        message="m",
        **IDENTITY,
    )
    diff = store.diff(base, proposal, context_lines=0)
    header, _first, second = diff.split("\n@@")
    only_second = (header + "\n@@" + second).encode()
    tree = store.apply_patch(base, only_second)
    result = store.commit_tree(tree, parents=[base], message="accepted", **IDENTITY)
    assert (
        read(store, result, "app.py")
        == b"def one():\n    return 1\n\n\ndef two():\n    return 22\n"
    )


def test_apply_patch_refuses_a_patch_that_does_not_fit(store, base):
    patch = b"--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-nothing like this\n+x\n"
    with pytest.raises(GitStoreError):
        store.apply_patch(base, patch)


def test_merge_of_non_overlapping_changes_is_clean_and_conflicts_are_named(store, base):
    ours = commit(
        store,
        {
            "app.py": b"def one():\n    return 1\n\n\ndef two():\n    return 2\n",
            "run.sh": ("100755", b"#!/bin/sh\necho moved on\n"),
            "gone.txt": b"bye\n",
        },
        parent=base,
    )
    theirs = store.commit_changes(
        parent=base,
        changes={"app.py": b"def one():\n    return 1\n"},
        ref="refs/qweb/c/5",
        message="m",
        **IDENTITY,
    )
    tree, conflicts = store.merge(ours, theirs)
    assert tree and conflicts == []
    clash = store.commit_changes(
        parent=base,
        changes={"run.sh": b"#!/bin/sh\necho other\n"},
        ref="refs/qweb/c/6",
        message="m",
        **IDENTITY,
    )
    tree, conflicts = store.merge(ours, clash)
    assert tree is None and conflicts == ["run.sh"]


def test_update_ref_moves_a_branch_only_from_the_expected_commit(store, base):
    other = store.commit_tree(
        store.apply_patch(base, b""), parents=[base], message="next", **IDENTITY
    )
    assert not store.update_ref("refs/heads/main", other, old=other)  # main is not there
    assert store.update_ref("refs/heads/main", other, old=base)
    assert store.resolve("main") == other
    assert store.update_ref("refs/heads/qweb/1", other, old=None)
    assert not store.update_ref("refs/heads/qweb/1", base, old=None)  # exists already
    with pytest.raises(GitStoreError):
        store.update_ref("refs/tags/v1", other, old=None)


def test_format_patch_gives_a_mailbox_git_am_can_read(store, base):
    sha = store.commit_changes(
        parent=base,
        changes={"new.py": b"x = 1\n"},
        ref="refs/qweb/c/7",
        message="Add x",
        **IDENTITY,
    )
    patch = store.format_patch(sha).decode()
    assert patch.startswith("From " + sha)
    assert "Subject: [PATCH] Add x" in patch and "+x = 1" in patch


def test_entry_finds_one_file_without_listing_the_whole_tree(store, base):
    entry = store.entry(base, "run.sh")
    assert entry is not None and entry.mode == "100755" and entry.type == "blob"
    assert store.entry(base, "missing.py") is None
    assert store.entry(base, "no/such/folder/x.py") is None
    assert store.entry(base, "") is None
