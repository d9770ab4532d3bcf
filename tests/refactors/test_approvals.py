"""Approvals: the workspace's policy sets how many a proposal needs before it is applied.

Reviews belong to one proposal, so one that replaces it (regenerated, fixed, edited by
hand) starts without approvals; a request for changes by a reviewer who may approve blocks
until that reviewer approves, whatever the number required.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.refactors import services
from apps.refactors.models import Apply, ProposalReview, RefactorPolicy
from apps.refactors.selectors import approval_state
from apps.refactors.services import apply as apply_module
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role
from qweb.lib.gitstore import GitStore
from tests import factories
from tests.refactors.test_flow import RENAME


def _policy(workspace, **fields) -> RefactorPolicy:
    policy, _ = RefactorPolicy.objects.update_or_create(workspace=workspace, defaults=fields)
    return policy


def _accept_all(changeset, user, membership_of) -> None:
    services.decisions_all(membership=membership_of(user), changeset=changeset, verdict="accept")


def _review(changeset, user, membership_of, state="approve", summary=""):
    return services.review_submit(
        membership=membership_of(user), changeset=changeset, state=state, summary=summary
    )


@pytest.fixture
def second_member(workspace):
    return factories.membership_create(workspace=workspace, role=Role.MEMBER).user


def test_no_approvals_are_needed_by_default(project, propose, owner, membership_of):
    changeset = propose(RENAME)
    _accept_all(changeset, owner, membership_of)

    record = services.changeset_apply(membership=membership_of(owner), changeset=changeset)

    assert record.state == Apply.State.APPLIED


def test_applying_is_refused_until_the_policy_is_met_naming_what_is_missing(
    project, propose, workspace, owner, member, second_member, membership_of
):
    _policy(workspace, required_approvals=2)
    changeset = propose(RENAME)
    _accept_all(changeset, owner, membership_of)
    _review(changeset, member, membership_of)

    with pytest.raises(ValidationError) as refused:
        services.changeset_apply(membership=membership_of(owner), changeset=changeset)

    assert "needs 2 approvals, has 1" in refused.value.messages[0]
    assert not Apply.objects.exists()
    _review(changeset, second_member, membership_of, summary="Looks right.")
    record = services.changeset_apply(membership=membership_of(owner), changeset=changeset)
    assert record.state == Apply.State.APPLIED


def test_the_requesters_own_approval_counts_only_when_the_policy_says_so(
    project, propose, workspace, owner, membership_of
):
    _policy(workspace, required_approvals=1)
    changeset = propose(RENAME)  # the owner asked for it
    _review(changeset, owner, membership_of)

    state = approval_state(changeset)
    assert (state.approvals, state.reviews[0].not_counted) == (0, "own proposal")
    assert state.refusal == "needs 1 approval, has 0"

    _policy(workspace, required_approvals=1, requester_approval_counts=True)
    assert approval_state(changeset).met


def test_changes_requested_block_until_that_reviewer_approves(
    project, propose, workspace, owner, member, second_member, membership_of
):
    _policy(workspace, required_approvals=1)
    changeset = propose(RENAME)
    _accept_all(changeset, owner, membership_of)
    _review(changeset, member, membership_of)
    _review(changeset, second_member, membership_of, "request_changes", "Keep the old name too.")

    with pytest.raises(ValidationError) as refused:
        services.changeset_apply(membership=membership_of(owner), changeset=changeset)

    assert f"changes requested by {second_member.display_name}" in refused.value.messages[0]
    _review(changeset, second_member, membership_of)  # replaces their review
    assert ProposalReview.objects.filter(reviewer=second_member).count() == 1
    assert services.changeset_apply(membership=membership_of(owner), changeset=changeset)


def test_a_request_for_changes_made_while_git_works_still_blocks_the_apply(
    project, propose, owner, member, membership_of, monkeypatch
):
    changeset = propose(RENAME)
    _accept_all(changeset, owner, membership_of)
    write = apply_module._write_commit

    def writing(*args, **kwargs):
        written = write(*args, **kwargs)
        _review(changeset, member, membership_of, "request_changes", "Wait for the release.")
        return written

    monkeypatch.setattr(apply_module, "_write_commit", writing)

    with pytest.raises(ValidationError, match=f"changes requested by {member.display_name}"):
        services.changeset_apply(membership=membership_of(owner), changeset=changeset)

    assert not Apply.objects.exists()
    branch = f"refs/heads/qweb/refactor-{changeset.session_id}"
    assert GitStore(project.store_path).resolve_optional(branch) is None


def test_only_the_policys_role_may_review_and_viewers_never(
    project, propose, workspace, member, admin, viewer, membership_of
):
    _policy(workspace, required_approvals=1, approver_role=Role.ADMIN)
    changeset = propose(RENAME)

    with pytest.raises(PermissionDenied):
        _review(changeset, member, membership_of)
    with pytest.raises(PermissionDenied):
        _review(changeset, viewer, membership_of)
    assert not ProposalReview.objects.exists()
    _review(changeset, admin, membership_of)
    assert approval_state(changeset).met


def test_an_approver_who_loses_the_role_no_longer_counts(
    project, propose, workspace, member, membership_of
):
    _policy(workspace, required_approvals=1)
    changeset = propose(RENAME)
    _review(changeset, member, membership_of)

    Membership.objects.filter(user=member).update(role=Role.VIEWER)

    assert approval_state(changeset).refusal == "needs 1 approval, has 0"


@pytest.mark.parametrize("replace", ["regenerate", "hand_edit"])
def test_approvals_are_cleared_when_a_new_proposal_replaces_the_approved_one(
    project, propose, workspace, owner, member, membership_of, replace
):
    _policy(workspace, required_approvals=1)
    changeset = propose(RENAME)
    _review(changeset, member, membership_of)
    assert approval_state(changeset).met

    if replace == "regenerate":
        newer = services.refactor_regenerate(
            membership=membership_of(owner), session=changeset.session
        )
        newer = propose.finish(newer, RENAME)
    else:
        newer = services.changeset_edit_file(
            membership=membership_of(owner),
            changeset=changeset,
            path="billing/views.py",
            content="VALUE = 1\n",
        )

    assert approval_state(newer).refusal == "needs 1 approval, has 0"
    with pytest.raises(ValidationError, match="newer proposal"):
        _review(changeset, member, membership_of)


def test_a_review_summary_has_a_limit_and_a_refusal_saves_nothing(
    project, propose, member, membership_of
):
    changeset = propose(RENAME)

    with pytest.raises(ValidationError):
        _review(changeset, member, membership_of, summary="x" * 10_001)
    with pytest.raises(ValidationError):
        _review(changeset, member, membership_of, state="maybe")

    assert not ProposalReview.objects.exists()


def test_a_review_is_announced_with_where_the_proposal_now_stands(
    project, propose, workspace, member, membership_of, monkeypatch
):
    sent: list[dict] = []
    monkeypatch.setattr(
        "apps.refactors.services.approvals.broadcast", lambda group, event: sent.append(event)
    )
    _policy(workspace, required_approvals=2)
    changeset = propose(RENAME)

    _review(changeset, member, membership_of, summary="Fine by me.")

    [event] = sent
    assert event["type"] == "review.changed"
    assert (event["reviewer"], event["state"], event["summary"]) == (
        member.display_name,
        "approve",
        "Fine by me.",
    )
    assert event["approval"]["refusal"] == "needs 2 approvals, has 1"


# Pages ----------------------------------------------------------------------------------------


def test_admins_set_the_approval_policy_on_the_refactors_page(client, workspace, admin, member):
    client.force_login(member)
    assert client.post("/w/acme/refactors/policy/", {"required_approvals": "3"}).status_code == 403

    client.force_login(admin)
    response = client.post(
        "/w/acme/refactors/policy/",
        {
            "block_on_high_findings": "on",
            "required_approvals": "2",
            "approver_role": "admin",
            "requester_approval_counts": "on",
        },
    )

    assert response.status_code == 302
    policy = RefactorPolicy.objects.get(workspace=workspace)
    assert (policy.required_approvals, policy.approver_role) == (2, "admin")
    assert policy.requester_approval_counts
    bad = client.post("/w/acme/refactors/policy/", {"required_approvals": "-1"}, follow=True)
    assert "Require 0 to 20 approvals." in bad.content.decode()
    assert RefactorPolicy.objects.get(workspace=workspace).required_approvals == 2


def test_the_page_and_the_session_list_show_the_approvals(
    client, project, propose, workspace, owner, member, viewer, membership_of
):
    _policy(workspace, required_approvals=2)
    changeset = propose(RENAME)
    client.force_login(member)
    response = client.post(
        f"/w/acme/refactors/{changeset.session_id}/proposals/{changeset.pk}/review/",
        {"state": "approve", "summary": "Ship it."},
    )
    assert response.status_code == 302

    page = client.get(f"/w/acme/refactors/{changeset.session_id}/").content.decode()
    assert "Not ready to apply: needs 2 approvals, has 1." in page
    assert "Ship it." in page
    assert 'data-testid="approve"' in page
    listing = client.get("/w/acme/refactors/").content.decode()
    assert "1/2 approvals" in listing

    client.force_login(viewer)
    as_viewer = client.get(f"/w/acme/refactors/{changeset.session_id}/").content.decode()
    assert "Ship it." in as_viewer
    assert 'data-testid="approve"' not in as_viewer
    assert 'id="review-form"' not in as_viewer
    refused = client.post(
        f"/w/acme/refactors/{changeset.session_id}/proposals/{changeset.pk}/review/",
        {"state": "approve"},
    )
    assert refused.status_code == 403
    assert ProposalReview.objects.count() == 1
