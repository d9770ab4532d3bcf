"""Importing archives: a good one becomes a commit; a bad one is refused and leaves nothing."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.ops.models import Task
from apps.ops.runner import TaskRunner
from apps.ops.services import TaskError
from apps.repos import services
from apps.repos.models import Repository
from apps.workspaces.models import Membership
from qweb.lib.gitstore import GitStore
from tests.repos.conftest import make_tar, make_zip

PROJECT = {
    "proj-1.0/manage.py": "print('manage')\n",
    "proj-1.0/proj/settings.py": "INSTALLED_APPS = []\n",
    "proj-1.0/proj/urls.py": "urlpatterns = []\n",
}


def _import(workspace, user, archive: Path, name="Proj", repository=None):
    return services.repository_import_archive(
        workspace=workspace,
        user=user,
        name=name,
        archive_path=archive,
        filename=archive.name,
        repository=repository,
    )


def _nothing_left(data_dir: Path) -> None:
    assert not Repository.objects.exists()
    repos = data_dir / "repositories"
    assert not repos.exists() or list(repos.iterdir()) == []


def _no_task_files(data_dir: Path) -> None:
    """No upload, unpacked archive or half-built store of any task is left."""
    tasks = data_dir / "tasks"
    assert not tasks.exists() or [p for p in tasks.rglob("*") if not p.is_dir()] == []
    assert not tasks.exists() or [p.name for p in tasks.iterdir()] in ([], ["staging"])


def test_an_archive_becomes_the_first_commit_of_a_new_repository(
    workspace, owner, tmp_path, data_dir
):
    archive = tmp_path / "proj-1.0.zip"
    make_zip(PROJECT, archive)
    repository = _import(workspace, owner, archive)
    store = GitStore(repository.store_path)
    paths = sorted(item.path for item in store.ls_tree(repository.head_sha, recursive=True))
    assert paths == ["manage.py", "proj/settings.py", "proj/urls.py"]
    [commit] = store.log(repository.default_branch)
    assert commit.author_email == owner.email
    assert repository.store_path.parent == data_dir / "repositories"


def test_a_newer_archive_becomes_the_next_commit(workspace, owner, tmp_path):
    first = tmp_path / "proj-1.0.zip"
    make_zip(PROJECT, first)
    repository = _import(workspace, owner, first)
    second = tmp_path / "proj-1.1.tar.gz"
    make_tar({**PROJECT, "proj-1.0/manage.py": "print('manage v2')\n"}, second)
    _import(workspace, owner, second, repository=repository)
    repository.refresh_from_db()
    store = GitStore(repository.store_path)
    commits = store.log(repository.default_branch)
    assert len(commits) == 2
    assert commits[0].parents == (commits[1].sha,)
    diff = store.diff(commits[1].sha, commits[0].sha)
    assert "+print('manage v2')" in diff


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"../evil.py": "x"}, ".."),
        ({"/etc/passwd": "x"}, "absolute"),
        ({"C:/evil.py": "x"}, "drive"),
        ({"a\x01b.py": "x"}, "control"),
    ],
)
def test_an_archive_with_a_dangerous_path_is_refused_and_leaves_nothing(
    workspace, owner, tmp_path, data_dir, files, message
):
    archive = tmp_path / "evil.tar"
    make_tar(files, archive, mode="w")
    with pytest.raises(TaskError) as refused:
        _import(workspace, owner, archive)
    assert message in str(refused.value).lower()
    _nothing_left(data_dir)


def test_a_symlink_out_of_the_tree_is_refused(workspace, owner, tmp_path, data_dir):
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("proj/escape")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../etc/passwd"
        tar.addfile(info)
    with pytest.raises(TaskError, match=r"(?i)link"):
        _import(workspace, owner, archive)
    _nothing_left(data_dir)


def test_a_file_that_is_not_what_its_name_says_is_refused(workspace, owner, tmp_path, data_dir):
    archive = tmp_path / "proj.zip"
    archive.write_bytes(b"this is plain text, not a zip")
    with pytest.raises(TaskError, match="not an archive"):
        _import(workspace, owner, archive)
    _nothing_left(data_dir)


def test_a_zip_bomb_is_refused_by_the_ratio_actually_read(
    workspace, owner, tmp_path, data_dir, settings
):
    settings.QWEB_ARCHIVE_MAX_RATIO = 50
    archive = tmp_path / "bomb.zip"
    make_zip({"bomb/zeros.txt": b"\0" * (20 * 1024 * 1024)}, archive)
    with pytest.raises(TaskError, match=r"(?i)ratio|compress"):
        _import(workspace, owner, archive)
    _nothing_left(data_dir)


def test_too_many_files_are_refused(workspace, owner, tmp_path, data_dir, settings):
    settings.QWEB_ARCHIVE_MAX_FILES = 3
    archive = tmp_path / "many.zip"
    make_zip({f"p/f{n}.py": "x" for n in range(5)}, archive)
    with pytest.raises(TaskError, match=r"(?i)files"):
        _import(workspace, owner, archive)
    _nothing_left(data_dir)


def test_an_uploaded_git_folder_is_dropped(workspace, owner, tmp_path):
    archive = tmp_path / "p.zip"
    make_zip(
        {
            "p/a.py": "x",
            "p/.git/config": "[core]\n\tfsmonitor = touch /tmp/pwned\n",
            "p/.git/hooks/post-checkout": "#!/bin/sh\n",
        },
        archive,
    )
    repository = _import(workspace, owner, archive)
    paths = [
        item.path
        for item in GitStore(repository.store_path).ls_tree(repository.head_sha, recursive=True)
    ]
    assert paths == ["a.py"]


def _fsck_strict(repository: Repository) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "--git-dir", str(repository.store_path), "fsck", "--strict", "--no-dangling"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "HOME": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"},
    )


def test_an_imported_archive_passes_git_fsck_strict(workspace, owner, tmp_path):
    archive = tmp_path / "p.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data, mode in [
            ("p/app.py", b"print(1)\n", 0o644),
            ("p/bin/run", b"#!/bin/sh\n", 0o755),
            ("p/.gitignore", b"*.pyc\n", 0o644),
            ("p/.gitmodules", b'[submodule "x"]\n\tpath = x\n\turl = https://e.test/x\n', 0o644),
            ("p/.git.d/notes.txt", b"not the .git folder\n", 0o644),
            ("p/na\u00efve/\u00fcn\u00efcode.py", b"x = 1\n", 0o644),
            ("p/.git/config", b"[core]\n\tfsmonitor = touch /tmp/pwned\n", 0o644),
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("p/current")
        link.type, link.linkname = tarfile.SYMTYPE, "app.py"
        tar.addfile(link)
    repository = _import(workspace, owner, archive)
    second = tmp_path / "p2.zip"
    make_zip({"p/app.py": "print(2)\n", "p/lib/new.py": "y = 2\n"}, second)
    _import(workspace, owner, second, repository=repository)

    result = _fsck_strict(repository)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout + result.stderr
    assert len(GitStore(repository.store_path).log("main")) == 2


@pytest.mark.parametrize(
    "evil",
    [
        "p/.git./config",
        "p/.git /config",
        "p/git~1/config",
        "p/GIT~1/hooks/post-checkout",
        "p/.git::$INDEX_ALLOCATION/config",
        "p/.g\u200cit/config",
        "p/sub/\ufeff.git/config",
    ],
)
def test_an_archive_with_a_name_that_is_git_on_windows_or_macos_is_refused_and_leaves_nothing(
    workspace, owner, tmp_path, data_dir, evil
):
    archive = tmp_path / "evil.zip"
    make_zip({"p/a.py": "x", evil: "[core]\n\tfsmonitor = touch /tmp/pwned\n"}, archive)

    with pytest.raises(TaskError) as refused:
        _import(workspace, owner, archive)

    message = str(refused.value)
    assert message.startswith(f"The archive entry {evil!r} is inside .git (")
    _nothing_left(data_dir)


def test_a_refused_archive_leaves_an_existing_repository_as_it_was(workspace, owner, tmp_path):
    first = tmp_path / "p.zip"
    make_zip({"p/a.py": "x"}, first)
    repository = _import(workspace, owner, first)
    evil = tmp_path / "evil.zip"
    make_zip({"p/a.py": "y", "p/git~1/config": "[core]\n"}, evil)

    with pytest.raises(TaskError, match=r"Windows short name of \.git"):
        _import(workspace, owner, evil, repository=repository)

    head = repository.head_sha
    repository.refresh_from_db()
    assert repository.head_sha == head
    assert GitStore(repository.store_path).resolve("main") == head
    assert _fsck_strict(repository).returncode == 0


def test_nested_archives_are_stored_as_files(workspace, owner, tmp_path):
    inner = io.BytesIO()
    make_zip({"x.py": "x"}, inner)
    archive = tmp_path / "p.zip"
    make_zip({"p/a.py": "x", "p/vendor.zip": inner.getvalue()}, archive)
    repository = _import(workspace, owner, archive)
    paths = sorted(
        item.path
        for item in GitStore(repository.store_path).ls_tree(repository.head_sha, recursive=True)
    )
    assert paths == ["a.py", "vendor.zip"]


def test_a_duplicate_repository_name_is_refused_before_anything_is_read(workspace, owner, tmp_path):
    archive = tmp_path / "p.zip"
    make_zip({"p/a.py": "x"}, archive)
    _import(workspace, owner, archive, name="Proj")
    with pytest.raises(TaskError, match="already has a repository"):
        _import(workspace, owner, archive, name="proj")
    assert Repository.objects.count() == 1


def test_a_viewer_cannot_queue_an_import(workspace, viewer, tmp_path, data_dir):
    membership = Membership.objects.get(user=viewer)
    with pytest.raises(PermissionDenied):
        services.repository_import_enqueue(
            actor=membership, name="P", archive=io.BytesIO(b"x"), filename="p.zip", size=1
        )
    assert not Task.objects.exists()
    _no_task_files(data_dir)


def test_a_wrong_extension_is_refused_at_upload(workspace, member, data_dir):
    membership = Membership.objects.get(user=member)
    with pytest.raises(ValidationError, match=r"\.zip"):
        services.repository_import_enqueue(
            actor=membership, name="P", archive=io.BytesIO(b"x"), filename="p.rar", size=1
        )
    assert not Task.objects.exists()


def test_a_queued_import_runs_in_the_background_and_removes_the_upload(
    workspace, member, tmp_path, data_dir
):
    membership = Membership.objects.get(user=member)
    archive = tmp_path / "p.zip"
    make_zip({"p/a.py": "x"}, archive)
    with archive.open("rb") as handle:
        task = services.repository_import_enqueue(
            actor=membership,
            name="P",
            archive=handle,
            filename="p.zip",
            size=archive.stat().st_size,
        )
    assert TaskRunner(worker="w", kinds=["repo.import"]).run_once()
    task.refresh_from_db()
    assert task.state == Task.State.DONE, task.error
    assert Repository.objects.get(pk=task.result["repository_id"]).slug == "p"
    _no_task_files(data_dir)


@pytest.mark.parametrize(
    ("name", "recorded"),
    [
        ("Alice <alice@corp>", "Alice alice@corp"),
        ("Alice\nSmith\r\n", "Alice Smith"),
        ("<>", "alice"),
        ("", "alice"),
        ("Zoë 李 ", "Zoë 李"),
        ("Ada " + "x" * 146, "Ada " + "x" * 146),
    ],
)
def test_a_user_whose_name_git_cannot_store_imports_under_the_cleaned_name(
    workspace, member, tmp_path, data_dir, name, recorded
):
    member.name, member.email = name, "alice@corp.example"
    member.save()
    archive = tmp_path / "p.zip"
    make_zip({"p/a.py": "x"}, archive)
    with archive.open("rb") as handle:
        task = services.repository_import_enqueue(
            actor=Membership.objects.get(user=member),
            name="P",
            archive=handle,
            filename="p.zip",
            size=archive.stat().st_size,
        )
    TaskRunner(worker="w", kinds=["repo.import"]).run_once()
    task.refresh_from_db()
    assert task.state == Task.State.DONE, task.error
    repository = Repository.objects.get(pk=task.result["repository_id"])
    [commit] = GitStore(repository.store_path).log(repository.default_branch)
    assert (commit.author_name, commit.author_email) == (recorded, "alice@corp.example")
    # A newer archive by the same user becomes the next commit just as well.
    second = tmp_path / "p2.zip"
    make_zip({"p/a.py": "y"}, second)
    _import(workspace, member, second, repository=repository)
    assert GitStore(repository.store_path).log(repository.default_branch)[0].author_name == recorded


def test_a_refused_queued_import_keeps_the_reason_on_the_task(
    workspace, member, tmp_path, data_dir
):
    membership = Membership.objects.get(user=member)
    task = services.repository_import_enqueue(
        actor=membership, name="P", archive=io.BytesIO(b"garbage"), filename="p.tar.gz", size=7
    )
    TaskRunner(worker="w", kinds=["repo.import"]).run_once()
    task.refresh_from_db()
    assert task.state == Task.State.FAILED
    assert "not an archive" in task.error or "gzip" in task.error
    _nothing_left(data_dir)
    _no_task_files(data_dir)


def test_the_import_command_prints_the_new_id(workspace, owner, tmp_path, capsys):
    archive = tmp_path / "p.zip"
    make_zip({"p/a.py": "x"}, archive)
    call_command("import_repo", str(archive), workspace="acme", name="CLI")
    assert capsys.readouterr().out.strip() == str(Repository.objects.get(slug="cli").pk)


def test_the_import_command_fails_with_a_one_line_reason(workspace, owner, tmp_path, data_dir):
    archive = tmp_path / "p.zip"
    archive.write_bytes(b"nope")
    with pytest.raises(CommandError, match="not an archive"):
        call_command("import_repo", str(archive), workspace="acme", name="CLI")
    _nothing_left(data_dir)


def test_the_import_command_exits_non_zero_with_a_one_line_reason(tmp_path):
    archive = tmp_path / "p.zip"
    archive.write_bytes(b"nope")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "QWEB_DATA_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}",
    }
    root = Path(__file__).resolve().parents[2]

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=root,
            check=False,
        )

    assert manage("migrate", "-v0").returncode == 0
    result = manage("import_repo", "--workspace", "nowhere", "--name", "x", str(archive))
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: No workspace with the address 'nowhere'."
