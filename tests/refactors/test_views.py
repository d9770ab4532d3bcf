"""The refactor pages, for each role: status codes, what the page shows, and what is stored."""

from __future__ import annotations

import io
import re
import subprocess
import zipfile

import pytest
from django.urls import reverse
from django.utils.html import escape

from apps.generation.models import GenerationJob
from apps.refactors import services
from apps.refactors.models import (
    Apply,
    ChangeSet,
    HunkDecision,
    RefactorPolicy,
    RefactorSession,
    ReviewComment,
)
from qweb.lib.gitstore import GitStore
from tests.refactors.test_flow import RENAME, read, refuse_new_objects
from tests.repos.conftest import make_zip

# RENAME with the views.py call site's edit broken: three edits apply, one is refused.
ONE_REFUSED = RENAME.replace(
    "    return rounded(total_with_tax(amount, 0.2))\n=", "    return nothing_like_this()\n="
)
# A new settings file holding cloud credentials: the scan reports high-severity findings.
SECRETS = (
    "billing/settings.py\n```python\n<<<<<<< SEARCH\n=======\n"
    "AWS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE'\n"
    "AWS_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'\n"
    ">>>>>>> REPLACE\n```\n"
)


def session_urls(session, changeset, slug="acme"):
    """Every URL of a session, with the method it answers to."""
    s, c = session.pk, changeset.pk
    return [
        ("get", reverse("refactors:detail", args=[slug, s]), {}),
        ("get", reverse("refactors:file", args=[slug, s, c]) + "?path=billing/money.py", {}),
        ("get", reverse("refactors:edit", args=[slug, s, c]) + "?path=billing/money.py", {}),
        ("get", reverse("refactors:patch", args=[slug, s, c]), {}),
        ("get", reverse("refactors:archive", args=[slug, s, c]), {}),
        (
            "post",
            reverse("refactors:decide", args=[slug, s, c]),
            {"path": "billing/money.py", "hunk": "-1", "verdict": "accept"},
        ),
        (
            "post",
            reverse("refactors:comment", args=[slug, s, c]),
            {"path": "billing/money.py", "line": "6", "side": "new", "body": "Hm"},
        ),
        ("post", reverse("refactors:reply", args=[slug, s, c]), {"thread_id": "1", "body": "Hm"}),
        ("post", reverse("refactors:resolve", args=[slug, s, c]), {"thread_id": "1"}),
        ("post", reverse("refactors:reopen", args=[slug, s, c]), {"thread_id": "1"}),
        (
            "post",
            reverse("refactors:suggest", args=[slug, s, c]),
            {"path": "billing/money.py", "start": "6", "length": "1", "suggested": "x"},
        ),
        ("post", reverse("refactors:suggestion_accept", args=[slug, s, c]), {"suggestion_id": "1"}),
        (
            "post",
            reverse("refactors:suggestion_dismiss", args=[slug, s, c]),
            {"suggestion_id": "1"},
        ),
        ("post", reverse("refactors:apply", args=[slug, s, c]), {"target": "branch"}),
        ("post", reverse("refactors:fix", args=[slug, s, c]), {}),
        (
            "post",
            reverse("refactors:edit", args=[slug, s, c]),
            {"path": "billing/money.py", "content": "x = 1\n"},
        ),
        ("post", reverse("refactors:regenerate", args=[slug, s]), {}),
        ("post", reverse("refactors:push", args=[slug, s, 1]), {}),
    ]


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def stored_state():
    """Everything a refused request must leave as it was."""
    return (
        RefactorSession.objects.count(),
        ChangeSet.objects.count(),
        GenerationJob.objects.count(),
        HunkDecision.objects.count(),
        ReviewComment.objects.count(),
        Apply.objects.count(),
    )


def git(*args, cwd=None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def ready(propose):
    """A proposal ready for review: the rename, every edit applied."""
    return propose(RENAME)


def detail_url(changeset) -> str:
    return reverse("refactors:detail", args=["acme", changeset.session_id])


def file_url(changeset, path="billing/money.py", **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in {"path": path, **params}.items())
    return reverse("refactors:file", args=["acme", changeset.session_id, changeset.pk]) + (
        "?" + query
    )


def changeset_url(name, changeset) -> str:
    return reverse(f"refactors:{name}", args=["acme", changeset.session_id, changeset.pk])


# The list page -------------------------------------------------------------------------------


def test_members_see_the_form_and_the_empty_state(client, project, member):
    client.force_login(member)
    page = client.get(reverse("refactors:index", args=["acme"]))

    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="new-refactor"' in html
    assert f'<option value="{project.pk}"' in html
    assert "No refactors yet" in html
    assert reverse("refactors:policy", args=["acme"]) not in html  # the policy is read-only


def test_viewers_see_no_form(client, project, viewer):
    client.force_login(viewer)
    html = client.get(reverse("refactors:index", args=["acme"])).content.decode()

    assert 'id="new-refactor"' not in html
    assert "You are a viewer" in html


def test_the_list_shows_the_sessions(client, ready, viewer):
    client.force_login(viewer)
    html = client.get(reverse("refactors:index", args=["acme"])).content.decode()

    assert "No refactors yet" not in html
    assert "Rename total_with_tax to total_including_tax" in html
    assert detail_url(ready) in html


def test_admins_edit_the_policy(client, project, admin):
    client.force_login(admin)
    page = client.get(reverse("refactors:index", args=["acme"]))
    assert reverse("refactors:policy", args=["acme"]) in page.content.decode()

    response = client.post(
        reverse("refactors:policy", args=["acme"]),
        {"allow_mode_changes": "on", "allow_push": "on"},
        follow=True,
    )

    assert response.status_code == 200
    assert "Refactor policy saved." in messages_of(response)
    policy = RefactorPolicy.objects.get(workspace__slug="acme")
    assert (policy.block_on_high_findings, policy.allow_mode_changes, policy.allow_push) == (
        False,
        True,
        True,
    )
    assert policy.updated_by == admin


def test_members_cannot_change_the_policy(client, project, member):
    client.force_login(member)

    response = client.post(reverse("refactors:policy", args=["acme"]), {"allow_mode_changes": "on"})

    assert response.status_code == 403
    assert not RefactorPolicy.objects.filter(allow_mode_changes=True).exists()


def test_outsiders_get_404_on_the_workspace_pages(client, project, outsider):
    client.force_login(outsider)
    data = {"repository": project.pk, "instruction": "Rename it"}

    assert client.get(reverse("refactors:index", args=["acme"])).status_code == 404
    assert client.post(reverse("refactors:new", args=["acme"]), data).status_code == 404
    assert client.post(reverse("refactors:policy", args=["acme"]), {}).status_code == 404
    assert stored_state() == (0, 0, 0, 0, 0, 0)
    assert not RefactorPolicy.objects.exists()


# Starting a refactor -------------------------------------------------------------------------


def test_a_member_starts_a_refactor_and_a_proposal_is_queued(client, project, member):
    client.force_login(member)

    response = client.post(
        reverse("refactors:new", args=["acme"]),
        {
            "repository": project.pk,
            "instruction": "Add docstrings",
            "branch": "",
            "scope": "billing/\nREADME.md",
        },
    )

    session = RefactorSession.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("refactors:detail", args=["acme", session.pk])
    assert (session.instruction, session.created_by, session.base_branch) == (
        "Add docstrings",
        member,
        "main",
    )
    assert session.scope == ["billing", "README.md"]
    changeset = session.changesets.get()
    assert changeset.state == ChangeSet.State.GENERATING
    assert (changeset.job.kind, changeset.job.state) == ("refactor", GenerationJob.State.QUEUED)


def test_viewers_cannot_start_a_refactor(client, project, viewer):
    client.force_login(viewer)

    response = client.post(
        reverse("refactors:new", args=["acme"]),
        {"repository": project.pk, "instruction": "Add docstrings"},
    )

    assert response.status_code == 403
    assert stored_state() == (0, 0, 0, 0, 0, 0)


@pytest.fixture
def foreign_repository(outsider, tmp_path):
    """A repository of the outsider's own workspace."""
    from apps.repos.services import repository_import_archive
    from apps.workspaces.models import Workspace

    archive = tmp_path / "other.zip"
    make_zip({"other/app.py": "print('hi')\n"}, archive)
    return repository_import_archive(
        workspace=Workspace.objects.get(slug="elsewhere"),
        user=outsider,
        name="Other",
        archive_path=archive,
        filename="other.zip",
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"repository": "999999"}, "Choose one of this workspace's repositories."),
        ({"repository": "abc"}, "Choose one of this workspace's repositories."),
        ({"repository": "²"}, "Choose one of this workspace's repositories."),
        ({"repository": "9" * 30}, "Choose one of this workspace's repositories."),
        ({"instruction": "   "}, "Describe the change you want."),
        ({"scope": "../x"}, "'../x': path contains '..'"),
        ({"scope": "nope/"}, "No file or folder 'nope' in this commit."),
        ({"branch": "no-such-branch"}, "'no-such-branch' is not a branch of Shop."),
    ],
    ids=[
        "unknown-repository",
        "not-a-number",
        "superscript-digit",
        "huge-number",
        "empty",
        "dotdot",
        "unknown-folder",
        "unknown-branch",
    ],
)
def test_a_bad_request_is_explained_and_saves_nothing(client, project, member, changes, message):
    client.force_login(member)
    data = {"repository": project.pk, "instruction": "Add docstrings", **changes}

    response = client.post(reverse("refactors:new", args=["acme"]), data, follow=True)

    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == reverse("refactors:index", args=["acme"])
    assert messages_of(response) == [message]
    assert stored_state() == (0, 0, 0, 0, 0, 0)


def test_another_workspaces_repository_is_refused(client, project, foreign_repository, member):
    client.force_login(member)

    response = client.post(
        reverse("refactors:new", args=["acme"]),
        {"repository": foreign_repository.pk, "instruction": "Add docstrings"},
        follow=True,
    )

    assert messages_of(response) == ["Choose one of this workspace's repositories."]
    assert stored_state() == (0, 0, 0, 0, 0, 0)


# Who sees a session --------------------------------------------------------------------------


def test_an_outsider_gets_404_for_every_url_of_a_session(client, ready, outsider):
    client.force_login(outsider)
    before = stored_state()

    for method, url, data in session_urls(ready.session, ready):
        assert getattr(client, method)(url, data).status_code == 404, (method, url)

    assert stored_state() == before
    assert (
        GitStore(ready.session.repository.store_path).resolve_optional(
            "refs/heads/" + ready.session.branch_name
        )
        is None
    )


def test_a_session_of_another_workspace_is_404_even_for_that_workspaces_owner(
    client, ready, outsider
):
    # The outsider owns "elsewhere": asking for this session through it finds nothing.
    client.force_login(outsider)
    before = stored_state()

    for method, url, data in session_urls(ready.session, ready, slug="elsewhere"):
        assert getattr(client, method)(url, data).status_code == 404, (method, url)

    assert stored_state() == before


def test_a_session_of_another_workspace_is_404_for_admins_of_this_one(
    client, project, foreign_repository, outsider, admin
):
    foreign = RefactorSession.objects.create(
        workspace=foreign_repository.workspace,
        repository=foreign_repository,
        title="Theirs",
        instruction="Theirs",
        base_branch="main",
        base_commit=foreign_repository.head_sha,
        created_by=outsider,
    )
    changeset = ChangeSet.objects.create(
        session=foreign, number=1, state=ChangeSet.State.READY, commit=foreign.base_commit
    )
    client.force_login(admin)

    for method, url, data in session_urls(foreign, changeset):
        assert getattr(client, method)(url, data).status_code == 404, (method, url)

    assert not Apply.objects.exists() and not HunkDecision.objects.exists()
    assert foreign.changesets.count() == 1


def test_a_proposal_of_another_session_is_404(client, ready, propose, owner):
    other = propose(RENAME, instruction="The same again")
    client.force_login(owner)
    # This session's URL with the other session's proposal.
    url = reverse("refactors:file", args=["acme", ready.session_id, other.pk])

    assert client.get(url + "?path=billing/money.py").status_code == 404


# The session page ----------------------------------------------------------------------------


def test_a_proposal_being_written_shows_the_live_box(client, project, owner, membership_of, viewer):
    session = services.refactor_create(
        membership=membership_of(owner), repository=project, instruction="Add docstrings"
    )
    client.force_login(viewer)

    html = client.get(reverse("refactors:detail", args=["acme", session.pk])).content.decode()

    assert 'data-testid="proposal-live"' in html
    assert 'data-changeset-state="generating"' in html
    assert 'id="stop-proposal"' not in html  # viewers cannot stop it
    assert 'data-testid="review"' not in html


def test_a_ready_proposal_shows_files_counts_and_refused_edits(client, propose, member):
    changeset = propose(ONE_REFUSED)
    refused = [r for r in changeset.results if r["status"] == "refused"]
    client.force_login(member)

    html = client.get(detail_url(changeset)).content.decode()

    assert 'data-testid="review"' in html
    assert 'data-testid="file-billing/money.py"' in html
    assert 'data-testid="file-billing/views.py"' in html
    assert "<strong>2</strong> files changed" in html
    assert '<strong data-testid="edits-applied">3 of 4</strong> (75%)' in html
    assert "1 edit could not be applied" in html
    assert escape(refused[0]["reason"]) in html
    assert "Fix the failed edits" in html
    assert changeset_url("fix", changeset) in html
    assert "high-severity" not in html
    assert "Admins apply accepted changes." in html  # a member cannot apply


def test_viewers_get_no_review_buttons(client, propose, viewer):
    changeset = propose(ONE_REFUSED)
    client.force_login(viewer)

    html = client.get(detail_url(changeset)).content.decode()

    assert 'data-testid="review"' in html
    assert "Fix the failed edits" not in html
    assert "data-decide-all" not in html
    assert changeset_url("apply", changeset) not in html


def test_high_severity_findings_show_a_badge(client, propose, admin):
    changeset = propose(SECRETS)
    high = sum(f["severity"] == "high" for f in changeset.findings)
    assert high
    client.force_login(admin)

    html = client.get(detail_url(changeset)).content.decode()

    plural = "s" if high > 1 else ""
    assert f'<span class="badge badge-error">{high} high-severity finding{plural}</span>' in html
    assert "This workspace blocks applying changes with high-severity findings" in html


# One file's diff -----------------------------------------------------------------------------


# Anything up to the end of the current table row.
SAME_ROW = r"(?:(?!</tr>).)*?"


def _code_rows(html: str) -> int:
    return len(re.findall(r'<tr class="ln-(?:context|add|remove)"', html))


def test_a_files_diff_is_highlighted_per_hunk(client, ready, viewer):
    client.force_login(viewer)

    response = client.get(file_url(ready))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<div class="hunk"') == 2  # the two ends of the file
    assert 'class="diff unified highlight"' in html
    # Pygments' spans: a keyword and the new function name on the added line.
    assert re.search(
        r'<tr class="ln-add" data-side="new" data-line="6">'
        + SAME_ROW
        + r'<span class="k">def</span>'
        + SAME_ROW
        + r'<span class="nf">total_including_tax</span>',
        html,
        re.S,
    )
    assert re.search(
        r'<tr class="ln-remove" data-side="old" data-line="6">'
        + SAME_ROW
        + r'<span class="nf">total_with_tax</span>',
        html,
        re.S,
    )
    assert 'class="comment-add"' not in html  # viewers cannot comment


def test_the_split_view_pairs_removed_and_added_lines(client, ready, member):
    client.force_login(member)

    html = client.get(file_url(ready, view="split")).content.decode()

    assert 'class="diff split highlight"' in html
    assert 'data-view="split"' in html
    # The removed definition and its replacement share a row.
    assert re.search(
        r'<tr>\s*<td class="num">6</td><td class="code ln-remove"><code>'
        + SAME_ROW
        + r"total_with_tax"
        + SAME_ROW
        + r'<td class="num">6</td><td class="code ln-add"><code>'
        + SAME_ROW
        + r"total_including_tax",
        html,
        re.S,
    )


def test_more_context_shows_more_lines(client, ready, member):
    client.force_login(member)

    narrow = client.get(file_url(ready)).content.decode()
    wide = client.get(file_url(ready, context=30)).content.decode()

    assert _code_rows(wide) > _code_rows(narrow)
    assert wide.count('<div class="hunk"') == 1  # the two hunks merged
    assert "context=50&amp;view=unified" in wide  # the next step


def test_an_unknown_file_is_404(client, ready, member):
    client.force_login(member)

    assert client.get(file_url(ready, path="shop/nope.py")).status_code == 404
    assert client.get(file_url(ready, path="billing/checks.py")).status_code == 404  # unchanged


def test_comments_appear_on_their_line(client, ready, member, membership_of):
    services.comment_add(
        membership=membership_of(member),
        changeset=ready,
        path="billing/money.py",
        line=6,
        side="new",
        body="Keep the old name as an alias?",
    )
    client.force_login(member)

    html = client.get(file_url(ready)).content.decode()

    assert re.search(
        r'<tr class="ln-add" data-side="new" data-line="6">(?:(?!<tr class="ln-).)*?'
        r'<tr class="comment-row">.*?Keep the old name as an alias\?',
        html,
        re.S,
    )
    assert html.count('class="comment-row"') == 1


def test_findings_appear_on_their_line(client, propose, member):
    changeset = propose(SECRETS)
    finding = next(f for f in changeset.findings if f["severity"] == "high" and f["line"])
    client.force_login(member)

    html = client.get(file_url(changeset, path="billing/settings.py")).content.decode()

    pattern = (
        rf'<tr class="ln-add" data-side="new" data-line="{finding["line"]}">'
        r'(?:(?!<tr class="ln-).)*?<tr class="finding-row">.*?'
        + re.escape(escape(finding["message"]))
    )
    assert re.search(pattern, html, re.S)


# Decisions and comments without the websocket ------------------------------------------------


def test_a_member_decides_a_hunk_and_a_whole_proposal(client, ready, member):
    client.force_login(member)

    response = client.post(
        changeset_url("decide", ready),
        {"path": "billing/money.py", "hunk": "1", "verdict": "reject"},
    )

    assert response.status_code == 302 and response["Location"] == detail_url(ready)
    decision = HunkDecision.objects.get()
    assert (decision.path, decision.hunk, decision.verdict, decision.decided_by) == (
        "billing/money.py",
        1,
        "reject",
        member,
    )

    client.post(changeset_url("decide", ready), {"all": "1", "verdict": "accept"})

    assert set(HunkDecision.objects.values_list("path", "hunk", "verdict")) == {
        ("billing/money.py", -1, "accept"),
        ("billing/views.py", -1, "accept"),
    }


def test_a_bad_decision_is_explained_and_saves_nothing(client, ready, member):
    client.force_login(member)

    response = client.post(
        changeset_url("decide", ready),
        {"path": "billing/money.py", "hunk": "7", "verdict": "accept"},
        follow=True,
    )

    assert messages_of(response) == ["No such hunk in this file."]
    assert not HunkDecision.objects.exists()


@pytest.mark.parametrize("hunk", ["--1", "²", "x", "", "99999999999999999999"])
def test_a_malformed_hunk_number_is_explained_and_saves_nothing(client, ready, member, hunk):
    client.force_login(member)

    response = client.post(
        changeset_url("decide", ready),
        {"path": "billing/money.py", "hunk": hunk, "verdict": "accept"},
        follow=True,
    )

    assert messages_of(response) == ["No such hunk in this file."]
    assert not HunkDecision.objects.exists()


@pytest.mark.parametrize("line", ["²", "0", "-3", "x", "99999999999999999999"])
def test_a_malformed_line_number_is_explained_and_saves_nothing(client, ready, member, line):
    client.force_login(member)

    response = client.post(
        changeset_url("comment", ready),
        {"path": "billing/views.py", "line": line, "side": "new", "body": "Hm"},
        follow=True,
    )

    assert messages_of(response) == ["Comment on a line of the diff."]
    assert not ReviewComment.objects.exists()


def test_a_member_comments_on_a_line(client, ready, member):
    client.force_login(member)

    response = client.post(
        changeset_url("comment", ready),
        {"path": "billing/views.py", "line": "5", "side": "new", "body": " Looks right. "},
    )

    assert response.status_code == 302
    comment = ReviewComment.objects.get()
    assert (comment.path, comment.line, comment.side, comment.body, comment.author) == (
        "billing/views.py",
        5,
        "new",
        "Looks right.",
        member,
    )


def test_an_empty_comment_is_explained_and_saves_nothing(client, ready, member):
    client.force_login(member)

    response = client.post(
        changeset_url("comment", ready),
        {"path": "billing/views.py", "line": "5", "side": "new", "body": "  "},
        follow=True,
    )

    assert messages_of(response) == ["Write a comment first."]
    assert not ReviewComment.objects.exists()


def test_viewers_cannot_decide_or_comment(client, ready, viewer):
    client.force_login(viewer)

    decided = client.post(
        changeset_url("decide", ready),
        {"path": "billing/money.py", "hunk": "-1", "verdict": "accept"},
    )
    commented = client.post(
        changeset_url("comment", ready),
        {"path": "billing/views.py", "line": "5", "side": "new", "body": "Hm"},
    )

    assert (decided.status_code, commented.status_code) == (403, 403)
    assert not HunkDecision.objects.exists() and not ReviewComment.objects.exists()


# Applying ------------------------------------------------------------------------------------


def _accept_all(changeset, membership):
    services.decisions_all(membership=membership, changeset=changeset, verdict="accept")


def test_members_cannot_apply(client, ready, member, membership_of):
    _accept_all(ready, membership_of(member))
    client.force_login(member)

    response = client.post(changeset_url("apply", ready), {"target": "branch"})

    assert response.status_code == 403
    assert not Apply.objects.exists()
    store = GitStore(ready.session.repository.store_path)
    assert store.resolve_optional("refs/heads/" + ready.session.branch_name) is None


def test_an_admin_applies_onto_a_new_branch(client, ready, admin, membership_of, project):
    _accept_all(ready, membership_of(admin))
    client.force_login(admin)

    response = client.post(changeset_url("apply", ready), {"target": "branch"}, follow=True)

    record = Apply.objects.get()
    assert (record.state, record.applied_by, record.target_branch) == (
        Apply.State.APPLIED,
        admin,
        f"qweb/refactor-{ready.session_id}",
    )
    store = GitStore(project.store_path)
    assert store.resolve(record.target_branch) == record.result_commit
    assert store.resolve("main") == project.head_sha
    assert messages_of(response) == [
        f"Applied as {record.result_commit[:10]} on qweb/refactor-{ready.session_id}."
    ]
    assert RefactorSession.objects.get().state == RefactorSession.State.APPLIED
    assert 'data-testid="applies"' in response.content.decode()


def test_applying_is_blocked_by_high_findings(client, propose, admin, membership_of, project):
    changeset = propose(SECRETS)
    _accept_all(changeset, membership_of(admin))
    client.force_login(admin)

    response = client.post(changeset_url("apply", changeset), {"target": "branch"}, follow=True)

    record = Apply.objects.get()
    assert record.state == Apply.State.BLOCKED and not record.result_commit
    assert messages_of(response) == [record.message]
    assert "high-severity" in record.message
    assert escape(record.message) in response.content.decode()  # in the list of applies too
    store = GitStore(project.store_path)
    assert store.resolve_optional("refs/heads/" + changeset.session.branch_name) is None


def test_applying_with_nothing_accepted_is_explained(client, ready, admin):
    client.force_login(admin)

    response = client.post(changeset_url("apply", ready), {"target": "branch"}, follow=True)

    assert messages_of(response) == ["Accept at least one change before applying."]
    assert not Apply.objects.exists()


def test_a_git_failure_while_applying_is_a_message_not_a_server_error(
    client, ready, admin, membership_of
):
    admin.name = "Alice <alice@corp>"
    admin.save()
    _accept_all(ready, membership_of(admin))
    refuse_new_objects(ready.session.repository.store_path)
    client.force_login(admin)

    response = client.post(changeset_url("apply", ready), {"target": "branch"}, follow=True)

    assert response.status_code == 200
    [message] = messages_of(response)
    assert message.startswith("The repository's git store failed: git commit-tree failed")
    assert not Apply.objects.exists()


# Editing by hand -----------------------------------------------------------------------------


def test_the_edit_page_shows_the_proposed_file(client, ready, member):
    client.force_login(member)

    page = client.get(changeset_url("edit", ready) + "?path=billing/money.py")

    assert page.status_code == 200
    html = page.content.decode()
    assert "<textarea" in html
    assert "def total_including_tax(amount, rate):" in html
    assert "Save as a new proposal" in html


def test_the_edit_page_of_a_missing_file_is_404(client, ready, member):
    client.force_login(member)

    assert client.get(changeset_url("edit", ready) + "?path=nope.py").status_code == 404


def test_a_hand_edit_becomes_the_next_proposal(client, ready, member, project):
    client.force_login(member)
    content = read(project, ready.commit, "billing/views.py").replace("0.2", "0.25")

    response = client.post(
        changeset_url("edit", ready),
        {"path": "billing/views.py", "content": content.replace("\n", "\r\n")},
        follow=True,
    )

    edited = ChangeSet.objects.get(session=ready.session, number=2)
    assert (edited.kind, edited.state, edited.parent_id, edited.created_by) == (
        ChangeSet.Kind.MANUAL,
        ChangeSet.State.READY,
        ready.pk,
        member,
    )
    assert read(project, edited.commit, "billing/views.py") == content  # CRLF from the form undone
    assert read(project, edited.commit, "billing/money.py") == read(
        project, ready.commit, "billing/money.py"
    )
    assert messages_of(response) == ["billing/views.py edited: review the new proposal."]


@pytest.mark.parametrize("path", ["billing", "billing/money.py/inner", "nope.py", "../x.py"])
def test_a_hand_edit_of_anything_but_a_file_of_the_proposal_is_refused(
    client, ready, member, project, path
):
    client.force_login(member)

    response = client.post(
        changeset_url("edit", ready), {"path": path, "content": "x = 1\n"}, follow=True
    )

    assert response.status_code == 200
    assert len(messages_of(response)) == 1 and "edited" not in messages_of(response)[0]
    assert ChangeSet.objects.count() == 1
    store = GitStore(project.store_path)
    assert store.resolve_optional("refs/qweb/changesets/" + str(ready.pk + 1)) is None


def test_viewers_cannot_edit(client, ready, viewer):
    client.force_login(viewer)

    assert client.get(changeset_url("edit", ready) + "?path=billing/money.py").status_code == 403
    response = client.post(
        changeset_url("edit", ready), {"path": "billing/money.py", "content": "x = 1\n"}
    )

    assert response.status_code == 403
    assert ChangeSet.objects.count() == 1


# Exports -------------------------------------------------------------------------------------


def test_the_patch_applies_with_git_am_on_a_fresh_clone(client, ready, viewer, project, tmp_path):
    client.force_login(viewer)

    response = client.get(changeset_url("patch", ready))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/x-patch"
    assert response["Content-Disposition"] == (
        f'attachment; filename="refactor-{ready.session_id}-1.patch"'
    )
    assert response.content.startswith(f"From {ready.commit} ".encode())
    patch = tmp_path / "change.patch"
    patch.write_bytes(response.content)
    clone = tmp_path / "clone"
    git("clone", "--quiet", str(project.store_path), str(clone))
    git("checkout", "--quiet", "--detach", ready.session.base_commit, cwd=clone)
    git(
        "-c", "user.name=Reviewer", "-c", "user.email=reviewer@example.com",
        "am", "--quiet", str(patch), cwd=clone,
    )  # fmt: skip
    # The same tree as the proposal, file for file.
    assert git("rev-parse", "HEAD^{tree}", cwd=clone) == git(
        "--git-dir", str(project.store_path), "rev-parse", f"{ready.commit}^{{tree}}"
    )
    assert "def total_including_tax" in (clone / "billing/money.py").read_text()


def test_a_proposal_that_changes_nothing_has_no_patch(client, propose, member):
    changeset = propose("Nothing to change.")
    client.force_login(member)

    assert client.get(changeset_url("patch", changeset)).status_code == 404


def test_the_archive_holds_the_proposed_tree(client, ready, viewer, project):
    client.force_login(viewer)

    response = client.get(changeset_url("archive", ready))

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.read("billing/money.py").decode() == read(
        project, ready.commit, "billing/money.py"
    )
    assert "def total_including_tax" in archive.read("billing/money.py").decode()
    assert "README.md" in archive.namelist()
