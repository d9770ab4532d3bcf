"""GitStore's reads for browsing: refs, ``<ref>/<path>`` splitting, history, comparisons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qweb.lib.diffs import parse_diff
from qweb.lib.gitstore import EMPTY_TREE, GitStore, GitStoreError
from tests.lib.test_gitstore import WHEN, commit, git

IDENTITY = {"author_name": "Ada", "author_email": "ada@example.com"}


@pytest.fixture
def store(tmp_path):
    return GitStore.init(tmp_path / "store.git", "main")


@pytest.fixture
def history(store):
    """main: root → docs; qweb/refactor-2 branches off root with one change of app.py."""
    root = commit(store, {"app.py": b"one\n", "README.md": b"# hi\n"}, message="Root")
    docs = commit(
        store,
        {"app.py": b"one\n", "README.md": b"# hi\n\nMore.\n"},
        message="Docs",
        when=WHEN + timedelta(days=1),
    )
    change = store.commit_changes(
        parent=root,
        changes={"app.py": b"two\n"},
        ref="refs/qweb/changesets/1",
        message="Change app\n\nWith a body.",
        when=WHEN + timedelta(days=2),
        **IDENTITY,
    )
    assert store.update_ref("refs/heads/qweb/refactor-2", change, None)
    return {"root": root, "docs": docs, "change": change}


def test_refs_lists_branches_newest_first_with_their_head_commit(store, history):
    refs = store.refs()
    assert [(ref.name, ref.kind, ref.sha) for ref in refs] == [
        ("qweb/refactor-2", "branch", history["change"]),
        ("main", "branch", history["docs"]),
    ]
    assert refs[0].subject == "Change app"
    assert refs[0].author_name == "Ada"
    assert refs[0].committed_at == WHEN + timedelta(days=2)
    assert store.branches() == refs


def test_refs_peel_annotated_tags_and_list_them_after_branches(store, history, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    git(
        "--git-dir",
        str(store.path),
        "tag",
        "-a",
        "-m",
        "Release",
        "v1.0",
        history["root"],
        home=home,
    )
    git("--git-dir", str(store.path), "tag", "light", history["docs"], home=home)
    tags = [(ref.name, ref.sha) for ref in store.refs() if ref.kind == "tag"]
    assert sorted(tags) == [("light", history["docs"]), ("v1.0", history["root"])]
    assert store.refs()[-1].kind == "tag"


def test_split_ref_path_takes_the_longest_ref_then_a_sha(store, history):
    found = store.split_ref_path("qweb/refactor-2/app.py")
    assert (found.ref, found.kind, found.commit, found.path) == (
        "qweb/refactor-2",
        "branch",
        history["change"],
        "app.py",
    )
    assert store.split_ref_path("main").path == ""
    assert store.split_ref_path("/main/docs/a/b/").path == "docs/a/b"
    by_sha = store.split_ref_path(f"{history['root'][:7]}/README.md")
    assert (by_sha.kind, by_sha.commit, by_sha.path) == ("commit", history["root"], "README.md")


@pytest.mark.parametrize(
    "rest", ["", "qweb", "qweb/refactor-3/app.py", "nope", "HEAD", "main~1", "--all", "0000000"]
)
def test_split_ref_path_names_nothing_for_anything_else(store, history, rest):
    assert store.split_ref_path(rest) is None


def test_log_of_a_path_lists_only_the_commits_that_changed_it(store, history):
    readme = store.log("main", paths=["README.md"])
    assert [c.subject for c in readme] == ["Docs", "Root"]
    assert [c.subject for c in store.log("main", paths=["app.py"])] == ["Root"]
    assert store.count_commits("main") == 2
    assert store.count_commits("main", paths=["app.py"]) == 1
    assert store.count_commits("qweb/refactor-2", paths=["app.py"]) == 2


def test_log_can_leave_out_what_another_ref_reaches(store, history):
    only = store.log("qweb/refactor-2", exclude="main")
    assert [c.sha for c in only] == [history["change"]]


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", ".git/config", "a//b"])
def test_log_refuses_paths_outside_the_tree(store, history, path):
    with pytest.raises(GitStoreError):
        store.log("main", paths=[path])
    with pytest.raises(GitStoreError):
        store.count_commits("main", paths=[path])


def test_commit_info_has_the_message_and_parents(store, history):
    info = store.commit_info("qweb/refactor-2")
    assert info.sha == history["change"]
    assert info.parents == (history["root"],)
    assert info.message.strip() == "Change app\n\nWith a body."
    assert store.commit_info(history["root"]).parents == ()
    with pytest.raises(GitStoreError):
        store.commit_info("nope")


def test_merge_base_and_ahead_behind_measure_how_refs_diverged(store, history):
    assert store.merge_base("main", "qweb/refactor-2") == history["root"]
    assert store.ahead_behind("main", "qweb/refactor-2") == (1, 1)
    assert store.ahead_behind("main", "main") == (0, 0)


def test_merge_base_of_unrelated_histories_is_none(store, history):
    other = store.commit_changes(
        parent=history["root"], changes={}, ref="refs/qweb/x", message="x", **IDENTITY
    )
    lonely = commit(store, {"other.txt": b"x\n"}, branch="lonely")
    assert store.merge_base(other, lonely) is None


def test_a_root_commit_diffs_against_the_empty_tree(store, history):
    files = parse_diff(store.diff(EMPTY_TREE, history["root"]))
    assert {(f.path, f.status) for f in files} == {("app.py", "added"), ("README.md", "added")}


@pytest.mark.parametrize("ref", ["--output=/tmp/x", "-p", "main\n", "a b"])
def test_browse_reads_refuse_revisions_that_look_like_options(store, history, ref):
    for call in (
        lambda: store.log(ref),
        lambda: store.log("main", exclude=ref),
        lambda: store.count_commits(ref),
        lambda: store.merge_base(ref, "main"),
        lambda: store.merge_base("main", ref),
        lambda: store.ahead_behind(ref, "main"),
        lambda: store.ahead_behind("main", ref),
    ):
        with pytest.raises(GitStoreError):
            call()


def test_refs_of_an_empty_store_are_empty(store):
    assert store.refs() == []
    assert store.split_ref_path("main") is None


def test_when_is_kept_in_utc(store, history):
    assert store.refs()[0].committed_at.tzinfo == UTC
    assert isinstance(store.refs()[0].committed_at, datetime)


def test_a_subject_with_unusual_separators_keeps_its_branch_listed(store, history):
    odd = store.commit_changes(
        parent=history["root"],
        changes={"x.txt": b"x\n"},
        ref="refs/qweb/odd",
        message="Odd\x0bsubject\u2028here",
        **IDENTITY,
    )
    assert store.update_ref("refs/heads/odd", odd, None)
    assert "odd" in [ref.name for ref in store.refs()]
