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
