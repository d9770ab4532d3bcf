from __future__ import annotations

import base64
import io
import os
import subprocess
import tarfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from qweb.lib import gitstore
from qweb.lib.archives import read_archive
from qweb.lib.gitstore import BytesEntry, GitStore, GitStoreError, is_binary, scrub_secrets

WHEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
TOKEN = "ghp_s3cr3tT0kenValue"


# --- helpers -------------------------------------------------------------------------------


def commit(store, files, message="upload", **kwargs):
    """Commit ``{path: bytes | (mode, bytes)}`` as the whole tree of a new commit."""
    entries = []
    for path, value in files.items():
        mode, data = value if isinstance(value, tuple) else ("100644", value)
        entries.append(BytesEntry(path, data, mode))
    kwargs.setdefault("branch", "main")
    kwargs.setdefault("when", WHEN)
    return store.commit_entries(
        entries, author_name="Ada", author_email="ada@example.com", message=message, **kwargs
    )


def git(*args, cwd=None, home):
    """Plain git for building fixtures, isolated from this machine's configuration."""
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Fixture",
        "GIT_AUTHOR_EMAIL": "fixture@example.com",
        "GIT_COMMITTER_NAME": "Fixture",
        "GIT_COMMITTER_EMAIL": "fixture@example.com",
    }
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, check=True)
    return result.stdout.decode().strip()


def pack_object_counts(store):
    """Objects listed across all pack indexes, and how many distinct objects there are."""
    listed = 0
    for index in (store.path / "objects" / "pack").glob("*.idx"):
        with index.open("rb") as handle:
            out = subprocess.run(["git", "show-index"], stdin=handle, capture_output=True)
        listed += len(out.stdout.splitlines())
    unique = subprocess.run(
        ["git", "--git-dir", str(store.path), "cat-file", "--batch-all-objects", "--batch-check"],
        capture_output=True,
        check=True,
    ).stdout.splitlines()
    return listed, len(unique)


def is_running(pid):
    """True unless the process is gone or a zombie (a container's init may not reap it)."""
    for _ in range(20):
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        if state in ("Z", "X"):
            return False
        time.sleep(0.05)
    return True


def loose_objects(store):
    return [p for p in (store.path / "objects").glob("??/*")]


HOOK_NAMES = [
    "pre-receive",
    "update",
    "post-receive",
    "post-update",
    "reference-transaction",
    "post-checkout",
    "post-merge",
    "pre-commit",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "fsmonitor-watchman",
]


def plant_hooks(hooks_dir, marker):
    hooks_dir.mkdir(parents=True, exist_ok=True)
    for name in HOOK_NAMES:
        hook = hooks_dir / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(0o755)


@pytest.fixture
def store(tmp_path):
    return GitStore.init(tmp_path / "store.git", "main")


@pytest.fixture
def home(tmp_path):
    folder = tmp_path / "home"
    folder.mkdir()
    return folder


@pytest.fixture
def source(tmp_path, home):
    """A local bare repository with three commits on 'trunk', a side branch and hooks."""
    work = tmp_path / "work"
    git("init", "--quiet", "--initial-branch=trunk", str(work), home=home)
    for number in range(1, 4):
        (work / "app.py").write_text(f"VERSION = {number}\n")
        (work / "README.md").write_text("# app\n")
        git("add", "-A", cwd=work, home=home)
        git("commit", "--quiet", "-m", f"commit {number}", cwd=work, home=home)
    git("checkout", "--quiet", "-b", "side", cwd=work, home=home)
    (work / "side.txt").write_text("side\n")
    git("add", "-A", cwd=work, home=home)
    git("commit", "--quiet", "-m", "side work", cwd=work, home=home)
    git("checkout", "--quiet", "trunk", cwd=work, home=home)
    bare = tmp_path / "source.git"
    git("clone", "--quiet", "--bare", "--no-local", str(work), str(bare), home=home)
    return bare


@pytest.fixture
def hook_marker(tmp_path):
    return tmp_path / "hooks-ran.txt"


def clone(url, path, **kwargs):
    kwargs.setdefault("allowed_protocols", ("file",))
    kwargs.setdefault("timeout_s", 60)
    return GitStore.clone(url, path, **kwargs)


# --- creating and committing ---------------------------------------------------------------


def test_init_creates_a_bare_repository_without_sample_hooks(tmp_path):
    store = GitStore.init(tmp_path / "new" / "store.git", "trunk")

    assert (store.path / "HEAD").read_text() == "ref: refs/heads/trunk\n"
    assert not (store.path / "hooks").exists()
    assert store.head_branch() == "trunk"
    assert store.resolve_optional("HEAD") is None


def test_init_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")

    with pytest.raises(GitStoreError, match="not empty"):
        GitStore.init(tmp_path / "taken", "main")


@pytest.mark.parametrize(
    "branch",
    ["", "-x", "a b", "a..b", "a/", "/a", ".hidden", "x.lock", "a:b", "@", "a@{1}", "a\\b"],
)
def test_it_refuses_invalid_branch_names(tmp_path, branch):
    with pytest.raises(GitStoreError, match="not a valid branch name"):
        GitStore.init(tmp_path / "store.git", branch)

    assert not (tmp_path / "store.git").exists()


def test_commit_entries_writes_files_executables_and_symlinks(store):
    sha = commit(
        store,
        {
            "README.md": b"# hi\n",
            "bin/run": ("100755", b"#!/bin/sh\n"),
            "docs/link": ("120000", b"../README.md"),
            "src/pkg/mod.py": b"x = 1\n",
        },
        message="First upload",
    )

    assert store.resolve("main") == sha
    assert store.resolve("HEAD") == sha
    items = store.ls_tree(sha, recursive=True)
    assert [(i.path, i.mode, i.type, i.size) for i in items] == [
        ("README.md", "100644", "blob", 5),
        ("bin/run", "100755", "blob", 10),
        ("docs/link", "120000", "blob", 12),
        ("src/pkg/mod.py", "100644", "blob", 6),
    ]
    [info] = store.log("main")
    assert (info.sha, info.parents, info.subject) == (sha, (), "First upload")
    assert (info.author_name, info.author_email, info.authored_at) == (
        "Ada",
        "ada@example.com",
        WHEN,
    )
    assert not loose_objects(store)


def test_a_second_upload_becomes_the_next_commit_on_the_branch(store):
    first = commit(store, {"a.txt": b"one\n", "gone.txt": b"bye\n"}, message="v1")
    second = commit(store, {"a.txt": b"two\n", "new.txt": b"hello\n"}, message="v2")

    history = store.log("main")
    assert [c.sha for c in history] == [second, first]
    assert history[0].parents == (first,)
    assert [i.path for i in store.ls_tree("main", recursive=True)] == ["a.txt", "new.txt"]
    assert [i.path for i in store.ls_tree(first, recursive=True)] == ["a.txt", "gone.txt"]


def test_unchanged_blobs_are_not_stored_twice(store):
    big = os.urandom(200_000)
    commit(store, {"big.bin": big, "a.txt": b"one\n"})
    commit(store, {"big.bin": big, "a.txt": b"two\n"})
    commit(store, {"copy/of/big.bin": big, "a.txt": b"two\n"})

    listed, unique = pack_object_counts(store)
    assert listed == unique
    assert not loose_objects(store)
    packed = sum(p.stat().st_size for p in (store.path / "objects" / "pack").glob("*.pack"))
    assert packed < 2 * len(big)


def test_commit_entries_refuses_to_move_a_branch_that_moved_meanwhile(store):
    first = commit(store, {"a.txt": b"1"})
    second = commit(store, {"a.txt": b"2"})

    with pytest.raises(GitStoreError, match="has moved on from"):
        commit(store, {"a.txt": b"3"}, parent=first)

    assert store.resolve("main") == second
    assert list((store.path / "refs").rglob("import/*")) == []


def test_commit_entries_refuses_to_move_a_branch_that_moves_during_the_write(store):
    first = commit(store, {"a.txt": b"1"})
    second = commit(store, {"a.txt": b"2"})
    subprocess.run(
        ["git", "--git-dir", str(store.path), "update-ref", "refs/heads/main", first], check=True
    )

    def entries_while_someone_else_commits():
        # Another import lands while this one is still streaming its files.
        subprocess.run(
            ["git", "--git-dir", str(store.path), "update-ref", "refs/heads/main", second],
            check=True,
        )
        yield BytesEntry("a.txt", b"3")

    with pytest.raises(GitStoreError, match="changed while the commit was being written"):
        store.commit_entries(
            entries_while_someone_else_commits(),
            branch="main",
            author_name="A",
            author_email="a@b",
            message="m",
        )

    assert store.resolve("main") == second
    assert list((store.path / "refs").rglob("import/*")) == []


def test_commit_entries_can_start_another_branch_from_a_parent(store):
    base = commit(store, {"a.txt": b"1"})

    feature = commit(store, {"a.txt": b"2"}, branch="feature/x", parent=base)

    assert store.log("feature/x")[0].parents == (base,)
    assert store.resolve("main") == base
    assert store.resolve("feature/x") == feature


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        "a/.git/hooks/x",
        "a/.GIT/x",
        "../x",
        "a/../b",
        "/abs",
        "a//b",
        "a/",
        "",
        "new\nline",
        "./a",
        ".git./config",
        "a/GIT~1/config",
        ".g\u200cit/HEAD",
        ".git::$INDEX_ALLOCATION/config",
        "back\\slash",
    ],
)
def test_commit_entries_refuses_unsafe_paths_and_changes_nothing(store, path):
    before = commit(store, {"ok.txt": b"ok"})

    with pytest.raises(GitStoreError, match="cannot be stored"):
        commit(store, {"ok.txt": b"ok", path: b"evil"})

    assert store.resolve("main") == before
    assert list((store.path / "refs").rglob("import/*")) == []
    assert list(store.path.glob("fast_import_crash_*")) == []
    _listed, unique = pack_object_counts(store)
    assert unique == 3  # the first commit, its tree and its one blob: nothing orphaned


def test_commit_entries_refuses_a_symlink_git_would_read_as_gitmodules(store):
    with pytest.raises(GitStoreError, match=r"would read as \.gitmodules"):
        commit(store, {"ok.txt": b"ok", "GITMOD~1": ("120000", b"ok.txt")})

    assert store.resolve_optional("main") is None


def test_commit_entries_refuses_unknown_modes(store):
    with pytest.raises(GitStoreError, match="Unsupported file mode"):
        commit(store, {"sub": ("160000", b"x")})


@pytest.mark.parametrize(
    ("name", "email"), [("Ada <x>", "a@b"), ("Ada", "a@b>\nx"), ("", "a@b"), ("Ada", "")]
)
def test_commit_entries_refuses_identities_git_cannot_store(store, name, email):
    with pytest.raises(GitStoreError, match="author name or email"):
        store.commit_entries(
            [BytesEntry("a", b"")],
            branch="main",
            author_name=name,
            author_email=email,
            message="m",
        )


def test_commit_entries_stores_paths_with_quotes_spaces_and_unicode(store):
    # Backslashes and drive letters are refused (the one path rule), so no such path here.
    paths = ['we "quote"/a b.txt', "naïve/ünïcode.py", "dir/C:colon", 'x"y']

    sha = commit(store, dict.fromkeys(paths, b"x"))

    assert sorted(i.path for i in store.ls_tree(sha, recursive=True)) == sorted(paths)


def test_commit_entries_refuses_content_shorter_than_its_size(store):
    class Liar(BytesEntry):
        @property
        def size(self):
            return 100

    with pytest.raises(GitStoreError, match="shorter than its stated size"):
        store.commit_entries(
            [Liar("a.txt", b"short")],
            branch="main",
            author_name="A",
            author_email="a@b",
            message="m",
        )
    assert store.resolve_optional("main") is None
    assert list(store.path.glob("fast_import_crash_*")) == []


def test_an_uploaded_archive_is_committed_in_one_step(store, tmp_path):
    upload = tmp_path / "project-1.0.tar.gz"
    with tarfile.open(upload, "w:gz") as archive:
        for name, data, mode in [
            ("project-1.0/a.py", b"print(1)\n", 0o755),
            ("project-1.0/.git/config", b"[core]\n", 0o644),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            archive.addfile(info, io.BytesIO(data))

    with read_archive(upload, filename=upload.name) as extracted:
        sha = store.commit_entries(
            extracted.entries,
            branch="main",
            author_name="Ada",
            author_email="a@b",
            message="Upload project-1.0.tar.gz",
        )

    assert [(i.path, i.mode) for i in store.ls_tree(sha, recursive=True)] == [("a.py", "100755")]


def test_commit_entries_is_fast_enough_for_ten_thousand_files(store):
    files = {f"pkg{i % 50}/mod{i}.py": f"VALUE = {i}\n".encode() for i in range(10_000)}

    started = time.monotonic()
    sha = commit(store, files)
    elapsed = time.monotonic() - started

    assert len(store.ls_tree(sha, recursive=True)) == 10_000
    assert elapsed < 20


# --- reading -------------------------------------------------------------------------------


def test_ls_tree_lists_one_folder_with_trees_and_blobs(store):
    sha = commit(store, {"src/a.py": b"a", "src/lib/b.py": b"bb", "README": b"r"})

    top = store.ls_tree(sha)
    src = store.ls_tree(sha, "src")
    below = store.ls_tree(sha, "src/", recursive=True)

    assert [(i.path, i.type, i.size) for i in top] == [("README", "blob", 1), ("src", "tree", None)]
    assert [(i.path, i.type) for i in src] == [("src/a.py", "blob"), ("src/lib", "tree")]
    assert [i.path for i in below] == ["src/a.py", "src/lib/b.py"]


@pytest.mark.parametrize("path", ["missing", "src/../etc", ".git"])
def test_ls_tree_refuses_missing_or_unsafe_folders(store, path):
    sha = commit(store, {"src/a.py": b"a"})

    with pytest.raises(GitStoreError):
        store.ls_tree(sha, path)


def test_read_blob_returns_at_most_max_bytes_and_says_so(store):
    sha = commit(store, {"big.txt": b"0123456789" * 1000})
    [item] = store.ls_tree(sha)

    head = store.read_blob(item.sha, max_bytes=15)
    whole = store.read_blob(item.sha, max_bytes=1_000_000)

    assert (head.data, head.size, head.truncated) == (b"012345678901234", 10_000, True)
    assert (len(whole.data), whole.truncated) == (10_000, False)


def test_read_blob_refuses_trees_missing_objects_and_non_ids(store):
    sha = commit(store, {"dir/a.txt": b"a"})
    [tree] = store.ls_tree(sha)

    with pytest.raises(GitStoreError, match="No blob"):
        store.read_blob(tree.sha, 100)
    with pytest.raises(GitStoreError, match="No blob"):
        store.read_blob("f" * 40, 100)
    with pytest.raises(GitStoreError, match="not a blob id"):
        store.read_blob("HEAD", 100)


def test_is_binary_follows_gits_nul_byte_rule():
    assert is_binary(b"PNG\x00\x01")
    assert not is_binary("plain text, ünïcode\n".encode())
    assert not is_binary(b"a" * 9000 + b"\x00")


def test_log_pages_with_limit_and_offset(store):
    shas = [commit(store, {"a.txt": str(i).encode()}, message=f"commit {i}") for i in range(5)]

    page = store.log("main", limit=2, offset=1)

    assert [c.sha for c in page] == [shas[3], shas[2]]
    assert [c.subject for c in page] == ["commit 3", "commit 2"]


def test_log_keeps_the_full_message(store):
    commit(store, {"a": b"a"}, message="Subject line\n\nBody with\x1f odd: chars | and lines\n")

    [info] = store.log("main")

    assert info.subject == "Subject line"
    assert info.message.startswith("Subject line\n\nBody with\x1f odd: chars | and lines")


def test_diff_is_a_unified_diff_computed_by_git(store):
    first = commit(store, {"a.txt": b"one\ntwo\n", "b.txt": b"keep\n", "old.txt": b"x\n" * 20})
    second = commit(store, {"a.txt": b"one\n2\n", "b.txt": b"keep\n", "new.txt": b"x\n" * 20})

    text = store.diff(first, second)
    only_a = store.diff(first, second, paths=["a.txt"])

    assert "--- a/a.txt\n+++ b/a.txt\n" in text
    assert "-two\n+2\n" in text
    assert "rename from old.txt\nrename to new.txt" in text
    assert "b.txt" not in text
    assert "a.txt" in only_a
    assert "new.txt" not in only_a


def test_diff_refuses_an_oversized_result(store):
    first = commit(store, {"a.txt": b"a\n" * 1000})
    second = commit(store, {"a.txt": b"b\n" * 1000})

    with pytest.raises(GitStoreError, match="too large"):
        store.diff(first, second, max_bytes=500)


def test_diff_reports_unknown_revisions_as_one_line(store):
    commit(store, {"a.txt": b"a"})

    with pytest.raises(GitStoreError) as caught:
        store.diff("main", "no-such-branch")

    assert caught.value.message.startswith("Computing the diff failed:")
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("ref", ["--output=/tmp/pwned", "-p", "a b", "main\n"])
def test_revisions_that_look_like_options_are_refused(store, ref):
    commit(store, {"a.txt": b"a"})

    with pytest.raises(GitStoreError, match="not a valid revision"):
        store.resolve(ref)
    with pytest.raises(GitStoreError, match="not a valid revision"):
        store.diff(ref, "main")


def test_resolve_names_what_it_could_not_find(store):
    with pytest.raises(GitStoreError, match="No commit named 'main'"):
        store.resolve("main")


FILES = {
    "README.md": ("100644", b"# hi\n"),
    "bin/run": ("100755", b"#!/bin/sh\necho hi\n"),
    "link": ("120000", b"README.md"),
    "data/blob.bin": ("100644", bytes(range(256)) * 10),
}


def test_a_zip_archive_round_trips_through_the_archive_reader(store, tmp_path):
    sha = commit(store, FILES)
    download = tmp_path / "download.zip"
    download.write_bytes(b"".join(store.archive(sha, "zip", prefix="app-1.0")))

    with zipfile.ZipFile(download) as archive:
        assert all(name.startswith("app-1.0/") for name in archive.namelist())
    with read_archive(download, filename=download.name) as extracted:
        assert {e.path: (e.mode, e.read_bytes()) for e in extracted.entries} == FILES


def test_a_tar_gz_archive_round_trips_through_the_archive_reader(store, tmp_path):
    sha = commit(store, FILES)
    download = tmp_path / "download.tar.gz"
    download.write_bytes(b"".join(store.archive("main", "tar.gz")))

    with read_archive(download, filename=download.name) as extracted:
        assert {e.path: (e.mode, e.read_bytes()) for e in extracted.entries} == FILES
    assert store.resolve("main") == sha


def test_archive_refuses_unknown_formats_and_commits(store):
    commit(store, {"a": b"a"})

    with pytest.raises(GitStoreError, match="Unsupported archive format"):
        store.archive("main", "rar")
    with pytest.raises(GitStoreError, match="No commit named"):
        store.archive("nope")


def test_a_download_stopped_early_leaves_no_git_process_behind(store):
    commit(store, {f"f{i}.bin": os.urandom(50_000) for i in range(40)})
    started = []
    real_popen = subprocess.Popen

    def recording_popen(*args, **kwargs):
        proc = real_popen(*args, **kwargs)
        started.append(proc)
        return proc

    stream = store.archive("main", "tar.gz")
    gitstore.subprocess.Popen = recording_popen
    try:
        next(stream)
        stream.close()
    finally:
        gitstore.subprocess.Popen = real_popen

    assert started
    assert all(proc.poll() is not None for proc in started)


# --- isolation from the server's own environment -------------------------------------------


def test_hooks_in_the_store_never_run(store, hook_marker):
    plant_hooks(store.path / "hooks", hook_marker)

    commit(store, {"a.txt": b"1"})
    commit(store, {"a.txt": b"2"})
    store.log("main")

    assert not hook_marker.exists()


def test_the_servers_git_configuration_and_environment_are_ignored(
    store, tmp_path, monkeypatch, hook_marker
):
    evil_hooks = tmp_path / "evil-hooks"
    plant_hooks(evil_hooks, hook_marker)
    evil_home = tmp_path / "evil-home"
    evil_home.mkdir()
    (evil_home / ".gitconfig").write_text(f"[core]\n\thooksPath = {evil_hooks}\n")
    monkeypatch.setenv("HOME", str(evil_home))
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere.git"))
    monkeypatch.setenv("GIT_CONFIG_PARAMETERS", f"'core.hooksPath'='{evil_hooks}'")
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", f"{evil_hooks}/pre-commit")

    first = commit(store, {"a.txt": b"1\n"})
    second = commit(store, {"a.txt": b"2\n"})
    store.diff(first, second)

    assert store.log("main")[0].sha == second
    assert not hook_marker.exists()
    assert not (tmp_path / "elsewhere.git").exists()


def test_every_git_call_runs_with_an_explicit_environment_and_git_dir(store, monkeypatch):
    calls = []
    real_popen = subprocess.Popen

    def recording_popen(args, **kwargs):
        calls.append((args, kwargs))
        return real_popen(args, **kwargs)

    monkeypatch.setattr(gitstore.subprocess, "Popen", recording_popen)
    sha = commit(store, {"a.txt": b"1"})
    store.ls_tree(sha)
    store.log("main")
    store.read_blob(store.ls_tree(sha)[0].sha, 10)
    b"".join(store.archive(sha))
    GitStore.init(store.path.parent / "other.git", "main")

    assert len(calls) >= 6
    for args, kwargs in calls:
        assert "--git-dir" in args
        assert "core.hooksPath=/dev/null" in args
        assert kwargs["env"]["GIT_CONFIG_NOSYSTEM"] == "1"
        assert kwargs["env"]["HOME"] == os.devnull
        assert "GIT_DIR" not in kwargs["env"]
        assert kwargs.get("shell", False) is False


# --- cloning and fetching ------------------------------------------------------------------


def test_clone_copies_the_default_branch_as_a_shallow_bare_store(source, tmp_path):
    store = clone(f"file://{source}", tmp_path / "clone.git")

    assert store.head_branch() == "trunk"
    [latest] = store.log("trunk")
    assert latest.subject == "commit 3"
    assert (store.path / "shallow").exists()
    assert store.resolve_optional("side") is None
    assert store.read_blob(store.ls_tree("HEAD")[1].sha, 100).data == b"VERSION = 3\n"


def test_clone_can_take_a_named_branch_with_full_history(source, tmp_path):
    store = clone(f"file://{source}", tmp_path / "clone.git", branch="side", depth=None)

    assert store.head_branch() == "side"
    assert [c.subject for c in store.log("side")] == [
        "side work",
        "commit 3",
        "commit 2",
        "commit 1",
    ]
    assert not (store.path / "shallow").exists()


def test_clone_never_runs_hooks_from_the_source_or_the_store(source, tmp_path, hook_marker):
    plant_hooks(source / "hooks", hook_marker)
    plant_hooks(tmp_path / "work" / ".git" / "hooks", hook_marker)

    store = clone(f"file://{source}", tmp_path / "clone.git")
    plant_hooks(store.path / "hooks", hook_marker)
    store.fetch(f"file://{source}", allowed_protocols=("file",), timeout_s=60)

    assert not hook_marker.exists()
    assert sorted(p.name for p in (store.path / "hooks").iterdir()) == sorted(HOOK_NAMES)


def test_clone_never_fetches_submodules(tmp_path, home):
    sub_work = tmp_path / "sub"
    git("init", "--quiet", "--initial-branch=main", str(sub_work), home=home)
    (sub_work / "secret.txt").write_text("submodule content\n")
    git("add", "-A", cwd=sub_work, home=home)
    git("commit", "--quiet", "-m", "sub", cwd=sub_work, home=home)
    sub_sha = git("rev-parse", "HEAD", cwd=sub_work, home=home)
    main_work = tmp_path / "main"
    git("init", "--quiet", "--initial-branch=main", str(main_work), home=home)
    (main_work / ".gitmodules").write_text(
        f'[submodule "sub"]\n\tpath = sub\n\turl = file://{sub_work}\n'
    )
    git("update-index", "--add", "--cacheinfo", f"160000,{sub_sha},sub", cwd=main_work, home=home)
    git("add", ".gitmodules", cwd=main_work, home=home)
    git("commit", "--quiet", "-m", "with submodule", cwd=main_work, home=home)
    source = tmp_path / "main.git"
    git("clone", "--quiet", "--bare", "--no-local", str(main_work), str(source), home=home)

    store = clone(f"file://{source}", tmp_path / "clone.git")

    items = {i.path: i for i in store.ls_tree("HEAD")}
    assert (items["sub"].mode, items["sub"].type, items["sub"].sha) == ("160000", "commit", sub_sha)
    assert not (store.path / "modules").exists()
    check = subprocess.run(
        ["git", "--git-dir", str(store.path), "cat-file", "-e", sub_sha], capture_output=True
    )
    assert check.returncode != 0


def test_clone_refuses_protocols_that_are_not_allowed(source, tmp_path):
    with pytest.raises(GitStoreError, match="not allowed"):
        GitStore.clone(f"file://{source}", tmp_path / "clone.git", timeout_s=60)

    assert not (tmp_path / "clone.git").exists()


def test_clone_refuses_the_ext_transport_even_when_file_is_allowed(tmp_path):
    marker = tmp_path / "pwned"

    with pytest.raises(GitStoreError):
        clone(f"ext::sh -c touch% {marker}", tmp_path / "clone.git", branch="main")
    with pytest.raises(GitStoreError):
        clone(f"ext::sh -c touch% {marker}", tmp_path / "clone2.git")

    assert not marker.exists()
    assert not (tmp_path / "clone.git").exists()


@pytest.mark.parametrize("protocol", ["ssh", "ext", "fd", "HTTPS", "file:x"])
def test_clone_will_not_enable_protocols_that_run_commands_or_use_server_keys(tmp_path, protocol):
    with pytest.raises(GitStoreError, match="cannot be enabled"):
        clone("https://git.example.com/a.git", tmp_path / "c.git", allowed_protocols=(protocol,))

    assert not (tmp_path / "c.git").exists()


@pytest.mark.parametrize("url", ["--upload-pack=touch /tmp/pwned", "file:///x\n--y"])
def test_clone_refuses_urls_that_could_be_read_as_options(tmp_path, url):
    with pytest.raises(GitStoreError, match="URL is not valid"):
        clone(url, tmp_path / "clone.git")


def test_clone_refuses_a_folder_that_is_not_empty(source, tmp_path):
    (tmp_path / "clone.git").mkdir()
    (tmp_path / "clone.git" / "keep.txt").write_text("mine")

    with pytest.raises(GitStoreError, match="not empty"):
        clone(f"file://{source}", tmp_path / "clone.git")

    assert (tmp_path / "clone.git" / "keep.txt").read_text() == "mine"


def repository_with_tree_entry(path, home, name, *, mode="040000"):
    """A bare repository whose one commit holds ``name`` (built with plumbing: git itself
    refuses to add such names from a work tree)."""
    git("init", "--quiet", "--bare", "--initial-branch=main", str(path), home=home)

    def plumbing(*args, data):
        run = subprocess.run(
            ["git", "--git-dir", str(path), *args], input=data, capture_output=True, check=True
        )
        return run.stdout.strip()

    blob = plumbing("hash-object", "-w", "--stdin", data=b"[core]\n\tfsmonitor = evil\n")
    if mode == "040000":
        entry = plumbing("mktree", data=b"100644 blob " + blob + b"\tconfig\n")
        kind = b"tree"
    else:
        entry, kind = blob, b"blob"
    tree = plumbing(
        "mktree", data=mode.encode() + b" " + kind + b" " + entry + b"\t" + name.encode()
    )
    sha = git("commit-tree", "-m", "evil", tree.decode(), cwd=path, home=home)
    git("update-ref", "refs/heads/main", sha, cwd=path, home=home)
    return path


@pytest.mark.parametrize(
    "name", ["git~1", ".git.", ".GIT ", ".g\u200cit", ".git::$INDEX_ALLOCATION"]
)
def test_clone_refuses_a_tree_entry_that_is_git_elsewhere_and_leaves_nothing(tmp_path, home, name):
    evil = repository_with_tree_entry(tmp_path / "evil.git", home, name)

    with pytest.raises(GitStoreError) as refused:
        clone(f"file://{evil}", tmp_path / "clone.git")

    assert refused.value.message == (
        "Fetching the repository failed: the repository holds objects git refuses to check "
        "out (hasDotgit: contains '.git')."
    )
    assert not (tmp_path / "clone.git").exists()


def test_an_older_store_holding_such_names_can_still_be_read(tmp_path, home):
    # Stores written before the rule may hold them: browsing and indexing keep working.
    old = GitStore(repository_with_tree_entry(tmp_path / "old.git", home, "git~1"))

    assert [i.path for i in old.ls_tree("main", recursive=True)] == ["git~1/config"]
    assert [i.path for i in old.ls_tree("main", "git~1")] == ["git~1/config"]
    assert old.entry("main", "git~1/config") is not None


def test_clone_refuses_a_symlinked_gitmodules(tmp_path, home):
    evil = repository_with_tree_entry(tmp_path / "evil.git", home, ".gitmodules", mode="120000")

    with pytest.raises(GitStoreError, match="gitmodulesSymlink"):
        clone(f"file://{evil}", tmp_path / "clone.git")

    assert not (tmp_path / "clone.git").exists()


def test_clone_stops_at_the_size_limit_and_leaves_nothing(tmp_path, home):
    work = tmp_path / "big"
    git("init", "--quiet", "--initial-branch=main", str(work), home=home)
    (work / "random.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    git("add", "-A", cwd=work, home=home)
    git("commit", "--quiet", "-m", "big", cwd=work, home=home)

    with pytest.raises(GitStoreError, match="larger than the"):
        clone(f"file://{work}", tmp_path / "clone.git", max_bytes=500_000)

    assert not (tmp_path / "clone.git").exists()


def test_clone_stops_at_the_time_limit_and_leaves_nothing(source, tmp_path):
    with pytest.raises(GitStoreError, match="took longer than"):
        clone(f"file://{source}", tmp_path / "clone.git", timeout_s=0.0001)

    assert not (tmp_path / "clone.git").exists()


def test_a_remote_command_past_its_time_limit_is_killed_with_its_helpers(tmp_path):
    remote = gitstore._Remote("file:///x", 0.3, 10**9, None, None, "u", ("file",))
    pid_file = tmp_path / "helper.pid"
    started = time.monotonic()

    with pytest.raises(GitStoreError, match=r"took longer than 0\.3 seconds"):
        gitstore._run_remote(
            ["/bin/sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait"],
            remote,
            what="Sleeping",
            watch=None,
            deadline=time.monotonic() + 0.3,
        )

    assert time.monotonic() - started < 5
    assert not is_running(int(pid_file.read_text()))


def test_fetch_brings_newer_commits_onto_the_branch(source, tmp_path, home):
    store = clone(f"file://{source}", tmp_path / "clone.git")
    work = tmp_path / "work"
    (work / "app.py").write_text("VERSION = 4\n")
    git("commit", "--quiet", "-am", "commit 4", cwd=work, home=home)
    git("push", "--quiet", str(source), "trunk", cwd=work, home=home)

    sha = store.fetch(f"file://{source}", allowed_protocols=("file",), timeout_s=60)

    assert sha == git("rev-parse", "HEAD", cwd=work, home=home)
    assert store.log("trunk", limit=1)[0].subject == "commit 4"


def test_a_token_travels_in_the_environment_never_on_the_command_line(
    source, tmp_path, monkeypatch
):
    calls = []
    real_popen = subprocess.Popen

    def recording_popen(args, **kwargs):
        calls.append((args, kwargs["env"]))
        return real_popen(args, **kwargs)

    monkeypatch.setattr(gitstore.subprocess, "Popen", recording_popen)
    clone(f"file://{source}", tmp_path / "clone.git", token=TOKEN)

    encoded = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    network_calls = [(args, env) for args, env in calls if "fetch" in args or "ls-remote" in args]
    assert len(network_calls) == 2
    for args, _env in calls:
        assert not any(TOKEN in arg or encoded in arg for arg in args)
    for _args, env in network_calls:
        assert env["GIT_CONFIG_COUNT"] == "1"
        assert env["GIT_CONFIG_KEY_0"] == "http.extraHeader"
        assert env["GIT_CONFIG_VALUE_0"] == f"Authorization: Basic {encoded}"


def test_network_calls_pin_the_address_and_switch_off_redirects_and_other_protocols(
    source, tmp_path, monkeypatch
):
    calls = []
    real_popen = subprocess.Popen

    def recording_popen(args, **kwargs):
        calls.append((args, kwargs["env"]))
        return real_popen(args, **kwargs)

    monkeypatch.setattr(gitstore.subprocess, "Popen", recording_popen)
    clone(f"file://{source}", tmp_path / "clone.git", pinned_resolve="git.example.com:443:1.2.3.4")

    network_calls = [(args, env) for args, env in calls if "fetch" in args or "ls-remote" in args]
    assert network_calls
    for args, env in network_calls:
        settings = [args[i + 1] for i, arg in enumerate(args) if arg == "-c"]
        assert "http.curloptResolve=git.example.com:443:1.2.3.4" in settings
        assert "http.followRedirects=false" in settings
        assert settings.index("protocol.allow=never") < settings.index("protocol.file.allow=always")
        assert "transfer.fsckObjects=true" in settings
        assert env["GIT_ALLOW_PROTOCOL"] == "file"
        assert env["GIT_TERMINAL_PROMPT"] == "0"


def test_clone_errors_never_contain_the_token(tmp_path):
    with pytest.raises(GitStoreError) as caught:
        clone(f"file://{tmp_path}/missing.git", tmp_path / "clone.git", token=TOKEN)

    assert TOKEN not in caught.value.message
    assert "\n" not in caught.value.message
    assert not (tmp_path / "clone.git").exists()


def test_scrub_secrets_removes_tokens_and_url_credentials():
    encoded = base64.b64encode(f"x:{TOKEN}".encode()).decode()
    text = f"fatal: https://user:{TOKEN}@host/x.git failed; header Basic {encoded}; {TOKEN}"

    scrubbed = scrub_secrets(text, [TOKEN, encoded])

    assert TOKEN not in scrubbed
    assert encoded not in scrubbed
    assert "https://***@host/x.git" in scrubbed


def test_a_pinned_address_with_separators_is_refused(tmp_path, source):
    with pytest.raises(GitStoreError, match="pinned address"):
        clone(f"file://{source}", tmp_path / "c.git", pinned_resolve="h:443:1.2.3.4,5.6.7.8")


def test_paths_are_absolute_because_git_runs_from_the_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    store = GitStore.init(Path("relative.git"), "main")
    commit(store, {"a.txt": b"a"})

    assert store.path == tmp_path / "relative.git"
    assert (tmp_path / "relative.git" / "HEAD").exists()


def test_iter_blobs_reads_many_blobs_from_one_process_in_order(tmp_path):
    from qweb.lib.gitstore import BytesEntry

    store = GitStore.init(tmp_path / "store.git")
    contents = {f"f{n}.txt": (f"file {n}\n" * (n * 500 + 1)).encode() for n in range(40)}
    sha = store.commit_entries(
        [BytesEntry(path, data) for path, data in contents.items()],
        branch="main",
        author_name="T",
        author_email="t@example.com",
        message="m",
    )
    items = {item.path: item.sha for item in store.ls_tree(sha, recursive=True)}
    shas = [items[path] for path in sorted(contents)]
    read = list(store.iter_blobs(shas))
    assert [blob_sha for blob_sha, _ in read] == shas
    assert [data for _, data in read] == [contents[path] for path in sorted(contents)]
    assert list(store.iter_blobs([])) == []
