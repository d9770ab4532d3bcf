"""``manage.py apply_edits``: a saved answer's edits on a commit, reported, nothing written."""

from __future__ import annotations

import json
import subprocess

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from qweb.lib.gitstore import GitStore
from tests.refactors.test_flow import RENAME


def _run(*args):
    from io import StringIO

    out = StringIO()
    call_command("apply_edits", *args, stdout=out)
    return out.getvalue()


def test_it_reports_every_edit_and_gits_diff_without_writing_anything(project, tmp_path):
    answer = tmp_path / "answer.md"
    answer.write_text(
        RENAME.replace("return nothing", "x")
        + "\nghost.py\n```\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```\n"
    )
    store = GitStore(project.store_path)
    refs_before = subprocess.run(
        ["git", "--git-dir", str(project.store_path), "for-each-ref"], capture_output=True
    ).stdout
    objects_before = subprocess.run(
        ["git", "--git-dir", str(project.store_path), "count-objects", "-v"], capture_output=True
    ).stdout

    report = json.loads(
        _run(str(answer), "--repo", str(project.pk), "--base", project.head_sha, "--json")
    )

    assert report["base"] == project.head_sha
    assert (report["applied"], report["refused"]) == (4, 1)
    by_path = {item["path"]: item for item in report["files"]}
    assert by_path["billing/money.py"]["applied"] == 2
    assert {e["how"] for e in by_path["billing/views.py"]["edits"]} == {"exact"}
    assert by_path["ghost.py"]["edits"][0]["status"] == "refused"
    assert by_path["ghost.py"]["edits"][0]["reason"]
    diff = report["diff"]
    assert "--- a/billing/money.py\n+++ b/billing/money.py" in diff
    assert "+def total_including_tax(amount, rate):" in diff
    assert "-from billing.money import rounded, total_with_tax" in diff
    # The diff is git's and applies to the base as it is.
    worktree = tmp_path / "wt"
    subprocess.run(["git", "clone", "-q", str(project.store_path), str(worktree)], check=True)
    check = subprocess.run(
        ["git", "apply", "--check", "-"], input=diff.encode(), cwd=worktree, capture_output=True
    )
    assert check.returncode == 0, check.stderr
    # Nothing was written to the repository.
    assert (
        subprocess.run(
            ["git", "--git-dir", str(project.store_path), "for-each-ref"], capture_output=True
        ).stdout
        == refs_before
    )
    assert (
        subprocess.run(
            ["git", "--git-dir", str(project.store_path), "count-objects", "-v"],
            capture_output=True,
        ).stdout
        == objects_before
    )
    assert store.resolve("main") == project.head_sha


def test_the_text_report_names_how_each_edit_applied(project, tmp_path):
    answer = tmp_path / "answer.md"
    answer.write_text(
        RENAME.replace("    return rounded(total_with_tax", "      return rounded(total_with_tax")
    )
    out = _run(str(answer), "--repo", str(project.pk), "--base", "main")
    assert out.startswith("4 applied, 0 refused (100%)")
    assert "applied  billing/views.py" in out
    assert "+from billing.money import rounded, total_including_tax" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--repo", "999999", "--base", "main"], "No repository"),
        (["--base", "0" * 40], "not a commit"),
        (["--base=--evil"], "not a commit"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(project, tmp_path, args, message):
    answer = tmp_path / "answer.md"
    answer.write_text(RENAME)
    if "--repo" not in args:
        args = ["--repo", str(project.pk), *args]
    with pytest.raises(CommandError, match=message):
        _run(str(answer), *args)


def test_a_missing_or_binary_answer_file_is_refused(project, tmp_path):
    with pytest.raises(CommandError, match="Cannot read"):
        _run(str(tmp_path / "nope.md"), "--repo", str(project.pk), "--base", "main")
    binary = tmp_path / "answer.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CommandError, match="not UTF-8"):
        _run(str(binary), "--repo", str(project.pk), "--base", "main")


def _block(path, search, replace):
    return f"{path}\n```\n<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n```\n\n"


MIXED = (
    RENAME
    + "DELETE billing/checks.py\n\n"
    + "RENAME README.md -> docs/README.md\n\n"
    + _block("billing/tax.py", "", "RATE = 0.2\n")
    + _block("docs/README.md", "Billing helpers.\n", "Billing helpers, renamed.\n")
    # Found and left as it was: no change for git, so none in the preview either.
    + _block("billing/__init__.py", "", "")
    # Refused: the commit must not replace billing/money.py with a folder.
    + _block("billing/money.py/x.py", "", "x = 1\n")
    + _block("ghost.py", "x\n", "y\n")
)
DELETE_THEN_FOLDER = (
    "DELETE billing/checks.py\n\n"
    + _block("billing/checks.py/__init__.py", "", "CHECKS = []\n")
    + "RENAME billing/views.py -> billing/web/views.py\n\n"
    + "RENAME static/logo.png -> static/img/logo.png\n"
)
GIT_STATUS = {"A": "added", "M": "modified", "D": "deleted"}


@pytest.mark.parametrize("answer", [MIXED, DELETE_THEN_FOLDER], ids=["mixed", "delete-then-folder"])
def test_the_preview_lists_exactly_the_paths_the_proposals_commit_changes(
    project, propose, tmp_path, answer
):
    changeset = propose(answer)
    assert changeset.commit != project.head_sha
    names = subprocess.run(
        [
            *("git", "--git-dir", str(project.store_path), "diff", "--name-status"),
            *("--no-renames", project.head_sha, changeset.commit),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    committed = {
        path: GIT_STATUS[status]
        for status, path in (line.split("\t", 1) for line in names.splitlines())
    }
    file = tmp_path / "answer.md"
    file.write_text(answer)

    report = json.loads(
        _run(str(file), "--repo", str(project.pk), "--base", project.head_sha, "--json")
    )

    assert {c["path"]: c["status"] for c in report["changes"]} == committed
    assert [c["path"] for c in report["changes"]] == sorted(committed)
    # And the proposal's per-edit results are the preview's.
    previewed = [edit for item in report["files"] for edit in item["edits"]]
    assert sorted(previewed, key=lambda row: row["index"]) == sorted(
        changeset.results, key=lambda row: row["index"]
    )


def test_the_mixed_preview_names_deletions_and_both_ends_of_a_rename(project, tmp_path):
    file = tmp_path / "answer.md"
    file.write_text(MIXED)

    out = _run(str(file), "--repo", str(project.pk), "--base", "main")

    changes = out.split("The commit would change:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert changes == [
        "  deleted  README.md",
        "  deleted  billing/checks.py",
        "  modified billing/money.py",
        "  added    billing/tax.py",
        "  modified billing/views.py",
        "  added    docs/README.md",
    ]
    assert "refused  billing/money.py/x.py: cannot create billing/money.py/x.py" in out
