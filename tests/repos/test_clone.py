"""Cloning: URLs are checked before anything is fetched; a clone is shallow and safe."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from apps.ops.models import Task
from apps.ops.runner import TaskRunner
from apps.ops.services import TaskError
from apps.repos import services
from apps.repos.models import Repository
from apps.workspaces.models import Membership
from qweb.crypto import decrypt_secret
from qweb.lib.gitstore import GitStore


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


@pytest.fixture
def upstream(tmp_path) -> Path:
    """A local repository with two commits on a branch that is not main."""
    work = tmp_path / "upstream"
    work.mkdir()
    _git("init", "-q", "-b", "trunk", cwd=work)
    (work / "app.py").write_text("print(1)\n")
    _git("add", ".", cwd=work)
    _git("commit", "-qm", "first", cwd=work)
    (work / "app.py").write_text("print(2)\n")
    _git("commit", "-qam", "second", cwd=work)
    return work


@pytest.fixture
def allow_local(settings):
    settings.QWEB_CLONE_SCHEMES = ["https", "file"]
    settings.QWEB_CLONE_ALLOW_PRIVATE = True


def test_a_local_server_clone_is_shallow_and_on_the_remote_default_branch(
    workspace, owner, upstream, allow_local
):
    repository = services.repository_clone(
        workspace=workspace, user=owner, name="Up", url=upstream.as_uri()
    )
    assert repository.default_branch == "trunk"
    assert repository.head_sha == _git("rev-parse", "HEAD", cwd=upstream)
    store = GitStore(repository.store_path)
    assert len(store.log("trunk")) == 1  # depth 1
    assert repository.source == Repository.Source.CLONE


def test_sync_fetches_the_new_head(workspace, owner, upstream, allow_local):
    repository = services.repository_clone(
        workspace=workspace, user=owner, name="Up", url=upstream.as_uri()
    )
    (upstream / "app.py").write_text("print(3)\n")
    _git("commit", "-qam", "third", cwd=upstream)
    sha = services.repository_sync(repository=repository)
    assert sha == _git("rev-parse", "HEAD", cwd=upstream)
    repository.refresh_from_db()
    assert repository.head_sha == sha
    assert repository.last_synced_at is not None


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc",
        "/srv/git/project.git",
        "ext::sh -c touch% /tmp/pwned",
        "-uhttps://example.com/x.git",
        "ftp://example.com/x.git",
        "https://user:pass@example.com/x.git",
        "https://127.0.0.1/x.git",
        "https://169.254.169.254/latest/meta-data",
        "https://10.0.0.5/x.git",
        "https://[::1]/x.git",
    ],
)
def test_unsafe_clone_urls_are_refused_before_anything_is_queued(workspace, member, url, data_dir):
    membership = Membership.objects.get(user=member)
    with pytest.raises(ValidationError) as refused:
        services.repository_clone_enqueue(actor=membership, name="X", url=url)
    assert refused.value.message_dict["url"]
    assert not Task.objects.exists()
    assert not Repository.objects.exists()


def test_a_clone_that_fails_leaves_nothing(workspace, owner, tmp_path, allow_local, data_dir):
    with pytest.raises(TaskError):
        services.repository_clone(
            workspace=workspace, user=owner, name="Gone", url=(tmp_path / "missing").as_uri()
        )
    assert not Repository.objects.exists()
    root = data_dir / "repositories"
    assert not root.exists() or list(root.iterdir()) == []


def test_a_repository_with_a_path_that_is_git_on_windows_is_refused_and_leaves_nothing(
    workspace, owner, tmp_path, allow_local, data_dir
):
    evil = tmp_path / "evil"
    evil.mkdir()
    _git("init", "-q", "-b", "main", cwd=evil)

    def plumbing(*args: str, data: bytes) -> bytes:
        return subprocess.run(
            ["git", *args], input=data, cwd=evil, capture_output=True, check=True
        ).stdout.strip()

    # A work tree cannot even add it: git refuses "git~1" when it checks paths out or in.
    blob = plumbing("hash-object", "-w", "--stdin", data=b"[core]\n\tfsmonitor = evil\n")
    inner = plumbing("mktree", data=b"100644 blob " + blob + b"\tconfig\n")
    tree = plumbing("mktree", data=b"040000 tree " + inner + b"\tgit~1\n")
    _git(
        "update-ref",
        "refs/heads/main",
        _git("commit-tree", "-m", "x", tree.decode(), cwd=evil),
        cwd=evil,
    )

    with pytest.raises(TaskError, match=r"hasDotgit"):
        services.repository_clone(workspace=workspace, user=owner, name="Evil", url=evil.as_uri())

    assert not Repository.objects.exists()
    root = data_dir / "repositories"
    assert not root.exists() or list(root.iterdir()) == []


def test_the_access_token_is_stored_encrypted_and_never_in_clear(
    workspace, member, upstream, allow_local
):
    membership = Membership.objects.get(user=member)
    task = services.repository_clone_enqueue(
        actor=membership, name="Up", url=upstream.as_uri(), token="ghp_supersecret"
    )
    assert "ghp_supersecret" not in str(task.payload)
    assert TaskRunner(worker="w", kinds=["repo.clone"]).run_once()
    task.refresh_from_db()
    assert task.state == Task.State.DONE, task.error
    repository = Repository.objects.get(pk=task.result["repository_id"])
    assert "ghp_supersecret" not in repository.clone_token_encrypted
    assert decrypt_secret(repository.clone_token_encrypted) == "ghp_supersecret"
