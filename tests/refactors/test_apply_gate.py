"""The security gate of apply judges hunks, as reviewers do: a high finding blocks only when
the hunk that holds it is accepted, and the refusal says which hunk, file and finding."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse
from django.utils.html import escape

from apps.refactors import services
from apps.refactors.models import Apply
from qweb.lib.gitstore import GitStore
from tests.refactors.test_flow import RENAME, read

# RENAME, with a cloud key added in the second hunk of billing/money.py (above rounded()).
KEY_IN_SECOND_HUNK = RENAME.replace(
    "=======\ndef rounded(amount):\n",
    "=======\nAWS_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE'\n\n\ndef rounded(amount):\n",
)


@pytest.fixture
def keyed(propose):
    """A proposal whose money.py has two hunks: the rename (clean), then the key (high)."""
    changeset = propose(KEY_IN_SECOND_HUNK)
    assert any(f["severity"] == "high" for f in changeset.findings)
    return changeset


def _key_finding(changeset):
    return next(
        f for f in changeset.findings if f["severity"] == "high" and f["rule"] == "AWS Access Key"
    )


def _second_hunk(changeset):
    hunk = services.file_diff(changeset, "billing/money.py").hunks[1]
    return hunk.new_start, hunk.new_start + hunk.new_length - 1


def _accept(changeset, membership, path, hunk):
    services.decision_set(
        membership=membership, changeset=changeset, path=path, hunk=hunk, verdict="accept"
    )


def _branch_head(changeset):
    store = GitStore(changeset.session.repository.store_path)
    return store.resolve_optional("refs/heads/" + changeset.session.branch_name)


def test_accepting_the_hunk_with_a_high_finding_blocks_and_names_hunk_file_and_finding(
    keyed, owner, membership_of
):
    finding = _key_finding(keyed)
    first, last = _second_hunk(keyed)
    assert first <= finding["line"] <= last
    services.decisions_all(membership=membership_of(owner), changeset=keyed, verdict="accept")

    record = services.changeset_apply(membership=membership_of(owner), changeset=keyed)

    assert record.state == Apply.State.BLOCKED and not record.result_commit
    assert Apply.objects.get() == record
    assert (
        f"hunk 2 of billing/money.py, lines {first}–{last}: "
        f"detect-secrets AWS Access Key at line {finding['line']}"
    ) in record.message
    assert "hunk 1 of" not in record.message
    assert "high-severity finding" in record.message
    assert _branch_head(keyed) is None


def test_rejecting_the_hunk_with_the_finding_applies_the_rest_without_it(
    keyed, owner, membership_of, project
):
    membership = membership_of(owner)
    services.decisions_all(membership=membership, changeset=keyed, verdict="accept")
    for hunk, verdict in ((0, "accept"), (1, "reject")):
        services.decision_set(
            membership=membership,
            changeset=keyed,
            path="billing/money.py",
            hunk=hunk,
            verdict=verdict,
        )

    record = services.changeset_apply(membership=membership, changeset=keyed)

    assert record.state == Apply.State.APPLIED
    assert _branch_head(keyed) == record.result_commit
    money = read(project, record.result_commit, "billing/money.py")
    assert "def total_including_tax" in money  # hunk 1 applied
    assert "AKIA" not in money and "Rounded to cents" not in money  # hunk 2 left out
    assert "total_including_tax(amount, 0.2)" in read(
        project, record.result_commit, "billing/views.py"
    )


def test_a_finding_in_another_hunk_of_the_file_does_not_block_an_accepted_hunk(
    keyed, owner, membership_of, project
):
    _accept(keyed, membership_of(owner), "billing/money.py", 0)

    record = services.changeset_apply(membership=membership_of(owner), changeset=keyed)

    assert record.state == Apply.State.APPLIED
    money = read(project, record.result_commit, "billing/money.py")
    assert "def total_including_tax" in money and "AKIA" not in money


def test_with_the_policy_off_the_finding_does_not_block(keyed, owner, membership_of, project):
    membership = membership_of(owner)
    services.policy_update(
        membership=membership, block_on_high_findings=False, allow_mode_changes=False
    )
    services.decisions_all(membership=membership, changeset=keyed, verdict="accept")

    record = services.changeset_apply(membership=membership, changeset=keyed)

    assert record.state == Apply.State.APPLIED
    assert "AKIAIOSFODNN7EXAMPLE" in read(project, record.result_commit, "billing/money.py")


@pytest.mark.parametrize(
    "path, line, where",
    [
        ("billing/money.py", 0, "every hunk of billing/money.py: qweb symlink on the whole file"),
        # Line 14 of money.py is between its two hunks: it belongs to the file as a whole.
        ("billing/money.py", 14, "every hunk of billing/money.py: qweb symlink at line 14"),
        ("", 0, "the change as a whole: qweb symlink on the whole file"),
    ],
    ids=["file-level", "outside-every-hunk", "whole-change"],
)
def test_a_finding_without_a_hunk_belongs_to_every_hunk_of_its_file(
    propose, owner, membership_of, path, line, where
):
    changeset = propose(RENAME)
    changeset.findings = [
        {
            "path": path,
            "line": line,
            "tool": "qweb",
            "rule": "symlink",
            "severity": "high",
            "message": "A link.",
            "more_info": "",
        }
    ]
    changeset.save(update_fields=["findings"])
    membership = membership_of(owner)
    _accept(changeset, membership, "billing/money.py", 0)

    record = services.changeset_apply(membership=membership, changeset=changeset)

    assert record.state == Apply.State.BLOCKED
    assert where in record.message


def test_rejecting_the_file_of_a_file_level_finding_unblocks_the_other_files(
    propose, owner, membership_of
):
    changeset = propose(RENAME)
    changeset.findings = [
        {
            "path": "billing/money.py",
            "line": 0,
            "tool": "qweb",
            "rule": "submodule",
            "severity": "high",
            "message": "A submodule.",
            "more_info": "",
        }
    ]
    changeset.save(update_fields=["findings"])
    membership = membership_of(owner)
    services.decisions_all(membership=membership, changeset=changeset, verdict="accept")
    services.decision_set(
        membership=membership,
        changeset=changeset,
        path="billing/money.py",
        hunk=-1,
        verdict="reject",
    )

    record = services.changeset_apply(membership=membership, changeset=changeset)

    assert record.state == Apply.State.APPLIED


# The pages -----------------------------------------------------------------------------------


def test_the_review_page_shows_which_hunk_holds_each_high_finding(client, keyed, member):
    finding = _key_finding(keyed)
    first, last = _second_hunk(keyed)
    client.force_login(member)

    html = client.get(reverse("refactors:detail", args=["acme", keyed.session_id])).content.decode()

    listed = re.search(r'data-testid="high-findings">(.*?)</div>', html, re.S).group(1)
    assert f"<strong>hunk 2 of billing/money.py, lines {first}–{last}</strong>" in listed
    assert escape(finding["message"]) in listed and f"line {finding['line']}" in listed

    diff = client.get(
        reverse("refactors:file", args=["acme", keyed.session_id, keyed.pk])
        + "?path=billing/money.py"
    ).content.decode()
    hunks = re.split(r'<div class="hunk" data-hunk="', diff)[1:]
    assert [h.split('"', 1)[0] for h in hunks] == ["0", "1"]
    assert 'data-testid="hunk-high-findings"' not in hunks[0]
    assert 'data-testid="hunk-high-findings"' in hunks[1]


def test_a_blocked_apply_explains_the_hunk_on_the_page(client, keyed, admin, membership_of):
    services.decisions_all(membership=membership_of(admin), changeset=keyed, verdict="accept")
    client.force_login(admin)

    response = client.post(
        reverse("refactors:apply", args=["acme", keyed.session_id, keyed.pk]),
        {"target": "branch"},
        follow=True,
    )

    record = Apply.objects.get()
    assert record.state == Apply.State.BLOCKED
    assert [str(m) for m in response.context["messages"]] == [record.message]
    assert "hunk 2 of billing/money.py" in record.message
    assert escape(record.message) in response.content.decode()
