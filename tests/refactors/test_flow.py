"""A refactor end to end through the services: propose, build, review, apply, conflict."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.generation.models import GenerationJob
from apps.ops.models import Task
from apps.refactors import services
from apps.refactors.forms import DecisionForm
from apps.refactors.models import Apply, ChangeSet, HunkDecision, RefactorSession
from qweb.lib.gitstore import GitStore

RENAME = """I rename the helper and its caller.

billing/money.py
```python
<<<<<<< SEARCH
def total_with_tax(amount, rate):
    \"\"\"The amount with tax added.\"\"\"
=======
def total_including_tax(amount, rate):
    \"\"\"The amount with tax added.\"\"\"
>>>>>>> REPLACE
<<<<<<< SEARCH
def rounded(amount):
    return amount.quantize(Decimal('0.01'))
=======
def rounded(amount):
    \"\"\"Rounded to cents.\"\"\"
    return amount.quantize(Decimal('0.01'))
>>>>>>> REPLACE
```

billing/views.py
```python
<<<<<<< SEARCH
from billing.money import rounded, total_with_tax
=======
from billing.money import rounded, total_including_tax
>>>>>>> REPLACE
<<<<<<< SEARCH
    return rounded(total_with_tax(amount, 0.2))
=======
    return rounded(total_including_tax(amount, 0.2))
>>>>>>> REPLACE
```
"""


def read(repository, commit, path):
    store = GitStore(repository.store_path)
    item = next(i for i in store.ls_tree(commit, recursive=True) if i.path == path)
    return store.read_blob(item.sha, 1 << 20).data.decode()


def test_a_proposal_is_queued_as_a_refactor_job_whose_prompt_teaches_the_edit_format(
    project, owner, membership_of
):
    session = services.refactor_create(
        membership=membership_of(owner), repository=project, instruction="Add docstrings"
    )
    changeset = session.changesets.get()
    assert session.base_commit == project.head_sha and session.base_branch == "main"
    assert changeset.state == ChangeSet.State.GENERATING
    job = changeset.job
    assert job.kind == "refactor" and job.state == GenerationJob.State.QUEUED
    system = job.messages[0]["content"]
    assert "<<<<<<< SEARCH" in system and ">>>>>>> REPLACE" in system
    assert job.messages[-1] == {"role": "user", "content": "Add docstrings"}


def test_the_answer_becomes_a_commit_with_gits_diff_and_per_edit_results(project, propose):
    changeset = propose(RENAME)
    assert changeset.state == ChangeSet.State.READY
    assert (changeset.blocks_applied, changeset.blocks_refused) == (4, 0)
    assert {r["how"] for r in changeset.results} == {"exact"}
    files = {f["path"]: f for f in changeset.files}
    assert set(files) == {"billing/money.py", "billing/views.py"}
    assert files["billing/money.py"]["hunks"] == 2  # the two ends of the file
    assert "def total_including_tax" in read(project, changeset.commit, "billing/money.py")
    store = GitStore(project.store_path)
    assert store.resolve(changeset.ref) == changeset.commit
    assert store.resolve("main") == project.head_sha  # nothing applied yet
    assert Task.objects.filter(kind="refactor.build").count() == 1
    assert (
        RefactorSession.objects.get(pk=changeset.session_id).state == RefactorSession.State.REVIEW
    )


def test_failed_edits_are_listed_with_reasons_and_the_rest_still_applies(project, propose):
    answer = RENAME.replace(
        "    return rounded(total_with_tax(amount, 0.2))\n=", "    return nothing_like_this()\n="
    )
    changeset = propose(answer)
    refused = [r for r in changeset.results if r["status"] == "refused"]
    assert len(refused) == 1 and refused[0]["path"] == "billing/views.py"
    assert refused[0]["reason"]
    assert changeset.blocks_applied == 3
    assert "total_including_tax" in read(project, changeset.commit, "billing/money.py")


def test_fixing_failed_edits_sends_them_back_and_builds_on_the_applied_ones(
    project, propose, owner, membership_of
):
    answer = RENAME.replace(
        "    return rounded(total_with_tax(amount, 0.2))\n=", "    return nothing_like_this()\n="
    )
    first = propose(answer)
    fix = services.refactor_fix_failed(membership=membership_of(owner), changeset=first)
    assert fix.kind == ChangeSet.Kind.FIX and fix.parent == first and fix.number == 2
    request = fix.job.messages[-1]["content"]
    assert "billing/views.py" in request and "could not be applied" in request
    assert fix.job.messages[-2] == {"role": "assistant", "content": first.answer}
    fixed = propose.finish(
        fix,
        "billing/views.py\n```python\n<<<<<<< SEARCH\n"
        "    return rounded(total_with_tax(amount, 0.2))\n=======\n"
        "    return rounded(total_including_tax(amount, 0.2))\n>>>>>>> REPLACE\n```\n",
    )
    assert fixed.blocks_refused == 0
    views = read(project, fixed.commit, "billing/views.py")
    money = read(project, fixed.commit, "billing/money.py")
    assert "total_with_tax" not in views and "def total_including_tax" in money


def test_edits_outside_the_scope_are_refused(project, propose):
    changeset = propose(RENAME, scope=["billing/views.py"])
    by_path = {}
    for result in changeset.results:
        by_path.setdefault(result["path"], set()).add(result["status"])
    assert by_path["billing/money.py"] == {"refused"}
    assert by_path["billing/views.py"] == {"applied"}
    assert [f["path"] for f in changeset.files] == ["billing/views.py"]


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("../etc/passwd\n```\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```\n", ""),
        ("/etc/passwd\n```\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```\n", ""),
        (".git/config\n```\n<<<<<<< SEARCH\n=======\n[core]\n>>>>>>> REPLACE\n```\n", ""),
        ("nope.py\n```\n<<<<<<< SEARCH\nx\n=======\ny\n>>>>>>> REPLACE\n```\n", ""),
        ("billing/money.py\n```\n<<<<<<< SEARCH\n    return value + 1\n", ""),
    ],
    ids=["dotdot", "absolute", "dot-git", "missing-file", "never-closed"],
)
def test_bad_edits_are_refused_per_file_and_the_tree_is_untouched(project, propose, answer, reason):
    changeset = propose(answer)
    assert changeset.state == ChangeSet.State.READY
    assert changeset.blocks_applied == 0 and changeset.blocks_refused >= 1
    assert all(r["reason"] for r in changeset.results)
    assert changeset.files == []
    assert changeset.commit == project.head_sha


def test_an_edit_of_a_binary_file_is_refused_and_the_file_is_untouched(project, propose):
    answer = "static/logo.png\n```\n<<<<<<< SEARCH\nPNG\n=======\nGIF\n>>>>>>> REPLACE\n```\n"
    changeset = propose(answer + RENAME)
    logo = [r for r in changeset.results if r["path"] == "static/logo.png"]
    assert [r["status"] for r in logo] == ["refused"]
    assert "binary" in logo[0]["reason"].lower()
    assert changeset.blocks_applied == 4  # the other edits still apply
    assert "static/logo.png" not in {f["path"] for f in changeset.files}


def test_an_enormous_answer_is_cut_with_a_reason_and_nothing_half_applied(project, propose):
    filler = "words " * 400_000  # 2.4 MB of prose before any edit
    changeset = propose(filler + RENAME)
    assert changeset.state == ChangeSet.State.READY
    assert changeset.blocks_applied == 0
    assert any(
        "long" in r["reason"].lower()
        or "large" in r["reason"].lower()
        or "characters" in r["reason"].lower()
        for r in changeset.results
    )
    assert changeset.files == []


def test_a_search_text_found_in_several_places_is_refused_as_ambiguous(project, propose):
    # check_a and check_b share these lines; the edit could land in either.
    answer = (
        "billing/checks.py\n```\n<<<<<<< SEARCH\n    if value is None:\n"
        '        raise ValueError("missing")\n=======\n    if value is None:\n'
        '        raise TypeError("missing")\n>>>>>>> REPLACE\n```\n'
    )
    changeset = propose(answer)
    assert changeset.blocks_applied == 0
    assert "ambiguous" in changeset.results[0]["reason"].lower()
    assert changeset.files == []


def _decide_all_but(changeset, owner, membership_of, reject_path, reject_hunk):
    membership = membership_of(owner)
    services.decisions_all(membership=membership, changeset=changeset, verdict="accept")
    for item in changeset.files:
        if item["path"] == reject_path:
            for hunk in range(item["hunks"]):
                services.decision_set(
                    membership=membership,
                    changeset=changeset,
                    path=item["path"],
                    hunk=hunk,
                    verdict="reject" if hunk == reject_hunk else "accept",
                )


def test_applying_commits_exactly_the_accepted_hunks_on_a_new_branch(
    project, propose, owner, membership_of
):
    changeset = propose(RENAME)
    _decide_all_but(changeset, owner, membership_of, "billing/money.py", 1)
    record = services.changeset_apply(
        membership=membership_of(owner), changeset=changeset, target="branch"
    )
    assert record.state == Apply.State.APPLIED
    store = GitStore(project.store_path)
    branch = f"qweb/refactor-{changeset.session_id}"
    assert store.resolve(branch) == record.result_commit
    money = read(project, record.result_commit, "billing/money.py")
    assert "def total_including_tax" in money  # hunk 0 accepted
    assert "Rounded to cents" not in money  # hunk 1 rejected
    assert "total_including_tax(amount, 0.2)" in read(
        project, record.result_commit, "billing/views.py"
    )
    assert store.resolve("main") == project.head_sha  # the base branch did not move
    commit = store.log(record.result_commit, limit=1)[0]
    assert commit.author_email == owner.email
    assert "Rename total_with_tax" in commit.subject
    assert record.patch_sha256 and len(record.patch_sha256) == 64


def test_applying_twice_applies_once(project, propose, owner, membership_of):
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    first = services.changeset_apply(membership=membership_of(owner), changeset=changeset)
    second = services.changeset_apply(membership=membership_of(owner), changeset=changeset)
    assert first.pk == second.pk
    assert Apply.objects.filter(state=Apply.State.APPLIED).count() == 1


def test_applying_to_a_base_branch_that_moved_merges_with_git(
    project, propose, owner, membership_of
):
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    store = GitStore(project.store_path)
    moved = store.commit_changes(
        parent=project.head_sha,
        changes={"README.md": b"# Shop\n\nBilling helpers, now documented.\n"},
        ref="refs/qweb/test/moved",
        author_name="Bo",
        author_email="bo@example.com",
        message="Docs",
    )
    assert store.update_ref("refs/heads/main", moved, project.head_sha)
    record = services.changeset_apply(
        membership=membership_of(owner), changeset=changeset, target="base"
    )
    assert record.state == Apply.State.APPLIED
    assert store.resolve("main") == record.result_commit
    assert "now documented" in read(project, record.result_commit, "README.md")
    assert "total_including_tax" in read(project, record.result_commit, "billing/views.py")
    project.refresh_from_db()
    assert project.head_sha == record.result_commit  # the repository follows its branch


def test_a_conflicting_move_of_the_branch_is_reported_and_nothing_is_written(
    project, propose, owner, membership_of
):
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    store = GitStore(project.store_path)
    moved = store.commit_changes(
        parent=project.head_sha,
        changes={
            "billing/views.py": b"from billing.money import rounded, total_with_tax as t\n\n\n"
            b"def invoice_total(request, amount):\n    return rounded(t(amount, 0.25))\n"
        },
        ref="refs/qweb/test/moved",
        author_name="Bo",
        author_email="bo@example.com",
        message="Change rate",
    )
    store.update_ref("refs/heads/main", moved, project.head_sha)
    record = services.changeset_apply(
        membership=membership_of(owner), changeset=changeset, target="base"
    )
    assert record.state == Apply.State.CONFLICT
    assert record.conflicts == ["billing/views.py"]
    assert store.resolve("main") == moved  # untouched
    assert not record.result_commit


@pytest.mark.parametrize(
    ("name", "recorded"),
    [
        ("Alice <alice@corp>", "Alice alice@corp"),
        ("Alice\nSmith", "Alice Smith"),
        ("<>", "owner"),
        ("Zoë 李", "Zoë 李"),
        ("Ada " + "x" * 146, "Ada " + "x" * 146),
    ],
)
def test_a_user_whose_name_git_cannot_store_applies_under_the_cleaned_name(
    project, propose, owner, membership_of, name, recorded
):
    owner.name, owner.email = name, "owner@example.com"
    owner.save()
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    record = services.changeset_apply(membership=membership_of(owner), changeset=changeset)
    assert record.state == Apply.State.APPLIED
    [commit] = GitStore(project.store_path).log(record.result_commit, limit=1)
    assert (commit.author_name, commit.author_email) == (recorded, "owner@example.com")
    assert (commit.committer_name, commit.committer_email) == (recorded, "owner@example.com")


def refuse_new_objects(store_path) -> None:
    """Damage a store so git can read it but not write a new object (like a full disk)."""
    objects = store_path / "objects"
    for n in range(256):
        fan_out = objects / f"{n:02x}"
        if not fan_out.exists():
            fan_out.write_bytes(b"")


def test_a_git_failure_while_applying_is_refused_with_gits_reason_and_nothing_saved(
    project, propose, owner, membership_of
):
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    # Every object the apply needs exists but its commit: git fails writing that one.
    refuse_new_objects(project.store_path)
    with pytest.raises(ValidationError, match="git store failed") as refused:
        services.changeset_apply(membership=membership_of(owner), changeset=changeset)
    assert "\n" not in str(refused.value.messages[0])
    assert not Apply.objects.exists()
    assert RefactorSession.objects.get().state != RefactorSession.State.APPLIED
    store = GitStore(project.store_path)
    assert store.resolve_optional("refs/heads/" + changeset.session.branch_name) is None


def test_a_damaged_store_refuses_the_apply_instead_of_crashing(
    project, propose, owner, membership_of
):
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    for pack in (project.store_path / "objects" / "pack").iterdir():
        pack.unlink()
    with pytest.raises(ValidationError, match="git store failed"):
        services.changeset_apply(membership=membership_of(owner), changeset=changeset)
    assert not Apply.objects.exists()


def test_members_review_but_only_admins_apply(project, propose, member, owner, membership_of):
    changeset = propose(RENAME)
    services.decisions_all(membership=membership_of(member), changeset=changeset, verdict="accept")
    with pytest.raises(PermissionDenied):
        services.changeset_apply(membership=membership_of(member), changeset=changeset)
    assert not Apply.objects.exists()


def test_viewers_cannot_start_or_review(project, propose, viewer, membership_of):
    with pytest.raises(PermissionDenied):
        services.refactor_create(
            membership=membership_of(viewer), repository=project, instruction="x"
        )
    changeset = propose(RENAME)
    with pytest.raises(PermissionDenied):
        services.decisions_all(
            membership=membership_of(viewer), changeset=changeset, verdict="accept"
        )
    assert not HunkDecision.objects.exists()


def test_nothing_accepted_means_nothing_to_apply(project, propose, owner, membership_of):
    changeset = propose(RENAME)
    with pytest.raises(ValidationError, match="Accept at least one"):
        services.changeset_apply(membership=membership_of(owner), changeset=changeset)


def test_high_severity_findings_block_applying_when_the_policy_says_so(
    project, propose, owner, membership_of
):
    answer = (
        "billing/settings.py\n```python\n<<<<<<< SEARCH\n=======\n"
        "AWS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE'\n"
        "AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'\n"
        ">>>>>>> REPLACE\n```\n"
    )
    changeset = propose(answer)
    assert any(
        f["severity"] == "high" and f["path"] == "billing/settings.py" for f in changeset.findings
    )
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    record = services.changeset_apply(membership=membership_of(owner), changeset=changeset)
    assert record.state == Apply.State.BLOCKED
    assert (
        GitStore(project.store_path).resolve_optional("refs/heads/" + changeset.session.branch_name)
        is None
    )
    services.policy_update(
        membership=membership_of(owner), block_on_high_findings=False, allow_mode_changes=False
    )
    assert (
        services.changeset_apply(membership=membership_of(owner), changeset=changeset).state
        == Apply.State.APPLIED
    )


def test_a_hand_edit_is_the_next_proposal_and_keeps_other_files_verdicts(
    project, propose, owner, membership_of
):
    changeset = propose(RENAME)
    membership = membership_of(owner)
    services.decision_set(
        membership=membership,
        changeset=changeset,
        path="billing/views.py",
        hunk=-1,
        verdict="accept",
    )
    edited = services.changeset_edit_file(
        membership=membership,
        changeset=changeset,
        path="billing/money.py",
        content=read(project, changeset.commit, "billing/money.py").replace(
            "rate)", "rate)  # edited"
        ),
    )
    assert edited.kind == ChangeSet.Kind.MANUAL and edited.number == 2
    assert "# edited" in read(project, edited.commit, "billing/money.py")
    kept = edited.decisions.get()
    assert (kept.path, kept.verdict) == ("billing/views.py", "accept")
    with pytest.raises(ValidationError, match="newer proposal"):
        services.decisions_all(membership=membership, changeset=changeset, verdict="accept")


def test_a_base_commit_that_no_longer_exists_fails_the_build_clearly(
    project, propose, owner, membership_of
):
    session = services.refactor_create(
        membership=membership_of(owner), repository=project, instruction="Anything"
    )
    RefactorSession.objects.filter(pk=session.pk).update(base_commit="0" * 40)
    changeset = session.changesets.get()
    built = propose.finish(changeset, RENAME)
    assert built.state == ChangeSet.State.FAILED
    assert built.error


def test_an_applied_branch_of_a_cloned_repository_is_pushed_when_the_policy_allows(
    workspace, owner, membership_of, tmp_path, settings, propose
):
    import subprocess

    from apps.ops.services import TaskError
    from apps.repos import services as repo_services
    from apps.repos.indexing import index_commit

    settings.QWEB_CLONE_SCHEMES = ["https", "file"]
    settings.QWEB_CLONE_ALLOW_PRIVATE = True
    origin = tmp_path / "origin.git"
    work = tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(work)], check=True)
    (work / "app.py").write_text("def total_with_tax(amount, rate):\n    return amount\n")
    git = ["git", "-c", "user.name=T", "-c", "user.email=t@example.com", "-C", str(work)]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "first"], check=True)
    subprocess.run([*git, "push", "-q", str(origin), "main"], check=True)
    repository = repo_services.repository_clone(
        workspace=workspace, user=owner, name="Cloned", url=origin.as_uri()
    )
    index_commit(repository=repository, sha=repository.head_sha)
    session = services.refactor_create(
        membership=membership_of(owner), repository=repository, instruction="Rename"
    )
    changeset = propose.finish(
        session.changesets.get(),
        "app.py\n```\n<<<<<<< SEARCH\ndef total_with_tax(amount, rate):\n=======\n"
        "def total_including_tax(amount, rate):\n>>>>>>> REPLACE\n```\n",
    )
    services.decisions_all(membership=membership_of(owner), changeset=changeset, verdict="accept")
    record = services.changeset_apply(membership=membership_of(owner), changeset=changeset)

    with pytest.raises(ValidationError, match="allow pushing"):
        services.apply_push_enqueue(membership=membership_of(owner), record=record)
    services.policy_update(
        membership=membership_of(owner),
        block_on_high_findings=True,
        allow_mode_changes=False,
        allow_push=True,
    )
    services.apply_push_enqueue(membership=membership_of(owner), record=record)
    pushed = services.apply_push(apply_id=record.pk)

    assert pushed.pushed_at is not None and not pushed.push_error
    remote = subprocess.run(
        ["git", "--git-dir", str(origin), "rev-parse", f"refs/heads/{record.target_branch}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert remote == record.result_commit
    # Never forced: once someone else's commit is on that branch, pushing again is refused.
    (work / "app.py").write_text("something else\n")
    subprocess.run([*git, "commit", "-qam", "theirs"], check=True)
    subprocess.run(
        [*git, "push", "-q", "-f", str(origin), f"main:refs/heads/{record.target_branch}"],
        check=True,
    )
    with pytest.raises(TaskError):
        services.apply_push(apply_id=record.pk)
    record.refresh_from_db()
    assert record.push_error


def test_hand_edits_of_old_proposals_or_binary_files_and_boolean_hunks_are_refused(
    project, propose, owner, membership_of
):
    membership = membership_of(owner)
    first = propose(RENAME)
    with pytest.raises(ValidationError, match="Binary"):
        services.changeset_edit_file(
            membership=membership, changeset=first, path="static/logo.png", content="x"
        )
    # A frame's true is no hunk number (a form post's "1" is).
    with pytest.raises(ValidationError, match="No such hunk"):
        DecisionForm.from_frame(
            {"path": "billing/views.py", "hunk": True, "verdict": "accept"}
        ).cleaned()
    services.refactor_regenerate(membership=membership, session=first.session)
    with pytest.raises(ValidationError):
        services.changeset_edit_file(
            membership=membership, changeset=first, path="billing/money.py", content="x = 1\n"
        )
    assert ChangeSet.objects.filter(kind=ChangeSet.Kind.MANUAL).count() == 0
    assert not HunkDecision.objects.exists()
