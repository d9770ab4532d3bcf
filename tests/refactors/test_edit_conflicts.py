"""Edits never delete what they do not name: no file through or onto a link, no file where
a folder is, no folder where a file is, no half a rename; proposals and hand edits alike."""

from __future__ import annotations

import io
import subprocess
import tarfile

import pytest
from django.core.exceptions import ValidationError

from apps.refactors import services
from apps.refactors.models import ChangeSet
from qweb.lib.gitstore import GitStore
from tests.refactors.conftest import PROJECT


def block(path, search, replace):
    return f"{path}\n```\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n\n"


def changed_paths(repository, changeset):
    """Every path git's diff of the proposal's commit names (renames as their two paths)."""
    out = subprocess.run(
        [
            "git",
            "--git-dir",
            str(repository.store_path),
            "diff",
            "--name-status",
            "--no-renames",
            changeset.session.base_commit,
            changeset.commit,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(reversed(line.split("\t", 1)) for line in out.splitlines())


def tree(repository, commit):
    return {i.path: i.mode for i in GitStore(repository.store_path).ls_tree(commit, recursive=True)}


@pytest.fixture
def linked(project, owner, tmp_path):
    """The project's next commit adds a link to a file, a link to a folder and a folder
    whose name an answer can write as a path (a bare "billing" reads as prose)."""
    from apps.repos import services as repos
    from apps.repos.indexing import index_commit

    archive = tmp_path / "shop-2.tar"
    with tarfile.open(archive, "w") as tar:
        files = {**PROJECT, "shop/billing/locale/en.po": 'msgid "total"\n'}
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in [("shop/latest.py", "billing/money.py"), ("shop/pkg", "billing")]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    repos.repository_import_archive(
        workspace=project.workspace,
        user=owner,
        name=project.name,
        archive_path=archive,
        filename=archive.name,
        repository=project,
    )
    project.refresh_from_db()
    index_commit(repository=project, sha=project.head_sha)
    return project


def test_a_proposal_never_writes_through_or_onto_a_symlink(linked, propose):
    answer = (
        block("pkg/evil.py", "", "x = 1\n")
        + block("latest.py", "def rounded(amount):\n", "def rounded(value):\n")
        + "DELETE latest.py\n\nRENAME README.md -> pkg/README.md\nRENAME latest.py -> now.py\n"
    )

    changeset = propose(answer)

    assert [(r["path"], r["status"], r["reason"]) for r in changeset.results] == [
        (
            "pkg/evil.py",
            "refused",
            "cannot create pkg/evil.py: pkg is a symbolic link, so nothing can be created "
            "inside it",
        ),
        ("latest.py", "refused", "latest.py is a symbolic link; qweb does not change it"),
        ("latest.py", "refused", "latest.py is a symbolic link; qweb does not change it"),
        (
            "README.md",
            "refused",
            "cannot rename to pkg/README.md: pkg is a symbolic link, so nothing can be created "
            "inside it",
        ),
        ("latest.py", "refused", "latest.py is a symbolic link; qweb does not change it"),
    ]
    assert changeset.files == [] and changeset.commit == linked.head_sha
    assert tree(linked, changeset.commit)["pkg"] == "120000"


def test_a_proposal_never_puts_a_folder_where_a_file_is_or_a_file_where_a_folder_is(
    linked, propose
):
    answer = (
        block("billing/money.py/helpers.py", "", "x = 1\n")
        + block("billing/locale", "", "LOCALE = 'en'\n")
        + "RENAME README.md -> billing/locale\n\n"
        + "RENAME README.md -> billing/views.py/README.md\n\n"
        + "DELETE billing/locale\n"
    )

    changeset = propose(answer)

    assert [r["reason"] for r in changeset.results] == [
        "cannot create billing/money.py/helpers.py: billing/money.py is a file, so nothing can "
        "be created inside it",
        "billing/locale is a folder, not a file",
        "cannot rename to billing/locale: billing/locale is a folder; a file there would delete "
        "everything in it",
        "cannot rename to billing/views.py/README.md: billing/views.py is a file, so nothing can "
        "be created inside it",
        "billing/locale is a folder, not a file",
    ]
    assert changeset.files == []
    assert tree(linked, changeset.commit) == tree(linked, linked.head_sha)


def test_a_file_the_answer_deletes_may_become_a_folder_and_the_results_say_both(project, propose):
    answer = "DELETE billing/checks.py\n\n" + block(
        "billing/checks.py/__init__.py", "", "CHECKS = []\n"
    )

    changeset = propose(answer)

    assert [(r["path"], r["how"]) for r in changeset.results] == [
        ("billing/checks.py", "deleted"),
        ("billing/checks.py/__init__.py", "created"),
    ]
    assert changed_paths(project, changeset) == {
        "billing/checks.py": "D",
        "billing/checks.py/__init__.py": "A",
    }


def test_a_rename_out_of_the_scope_is_refused_instead_of_losing_the_file(project, propose):
    changeset = propose(
        "RENAME README.md -> docs/README.md\nRENAME billing/views.py -> README.txt\n",
        scope=["README.md", "billing/views.py"],
    )

    assert [r["reason"] for r in changeset.results] == [
        "cannot rename to docs/README.md: Outside the refactor's scope.",
        "cannot rename to README.txt: Outside the refactor's scope.",
    ]
    assert changeset.files == []
    assert "README.md" in tree(project, changeset.commit)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("billing/money.py/x.py", "No such file"),
        ("billing", "No such file"),
        ("latest.py", "No such file"),
        ("pkg/x.py", "No such file"),
        ("git~1/config", "inside .git"),
        (".git./config", "inside .git"),
        (".g\u200cit/config", r"control character U\+200C"),
    ],
)
def test_a_hand_edit_never_replaces_a_folder_a_link_or_writes_into_git(
    linked, propose, owner, membership_of, path, message
):
    first = propose(block("README.md", "# Shop\n", "# The shop\n"))

    with pytest.raises(ValidationError, match=message):
        services.changeset_edit_file(
            membership=membership_of(owner), changeset=first, path=path, content="x = 1\n"
        )

    assert not ChangeSet.objects.filter(kind=ChangeSet.Kind.MANUAL).exists()
