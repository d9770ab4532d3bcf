"""Who decided what: every verdict carries its author and time, and a stale one is refused.

A verdict names the one the reviewer's page showed (``expected``); the service compares it
under a lock on the proposal's row, so of two reviewers deciding the same hunk at once the
first is stored and the second is refused with the stored verdict and who made it.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.refactors import services
from apps.refactors.models import HunkDecision
from tests.refactors.test_flow import RENAME

MONEY = "billing/money.py"


@pytest.fixture
def broadcasts(monkeypatch):
    """The events the review services announce (after commit), in order."""
    sent: list[dict] = []
    monkeypatch.setattr(
        "apps.refactors.services.review.broadcast", lambda group, event: sent.append(event)
    )
    return sent


def test_a_decision_is_announced_with_who_made_it_and_when(
    project, propose, member, membership_of, broadcasts
):
    changeset = propose(RENAME)

    decision = services.decision_set(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        hunk=0,
        verdict="accept",
        expected="undecided",
    )

    assert decision.decided_by == member
    [event] = broadcasts
    assert event["by"] == member.display_name
    assert event["by_id"] == member.pk
    assert event["at"] == decision.decided_at.isoformat()


def test_a_verdict_made_on_what_the_page_showed_replaces_it_with_the_new_author(
    project, propose, member, owner, membership_of
):
    changeset = propose(RENAME)
    services.decision_set(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        hunk=0,
        verdict="accept",
        expected="undecided",
    )

    services.decision_set(
        membership=membership_of(owner),
        changeset=changeset,
        path=MONEY,
        hunk=0,
        verdict="reject",
        expected="accept",
    )

    stored = HunkDecision.objects.get(changeset=changeset, path=MONEY, hunk=0)
    assert (stored.verdict, stored.decided_by) == ("reject", owner)


def test_a_verdict_on_a_state_the_page_did_not_show_is_refused_with_the_stored_one(
    project, propose, member, owner, membership_of, broadcasts
):
    changeset = propose(RENAME)
    services.decision_set(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        hunk=0,
        verdict="accept",
        expected="undecided",
    )
    broadcasts.clear()

    with pytest.raises(services.StaleDecision) as refused:
        services.decision_set(
            membership=membership_of(owner),
            changeset=changeset,
            path=MONEY,
            hunk=0,
            verdict="reject",
            expected="undecided",
        )

    assert member.display_name in refused.value.messages[0]
    assert refused.value.current["verdict"] == "accept"
    assert refused.value.current["by"] == member.display_name
    assert refused.value.current["by_id"] == member.pk
    stored = HunkDecision.objects.get(changeset=changeset, path=MONEY, hunk=0)
    assert (stored.verdict, stored.decided_by) == ("accept", member)
    assert broadcasts == []


def test_a_file_verdict_counts_for_its_hunks_when_compared(
    project, propose, member, owner, membership_of
):
    changeset = propose(RENAME)
    services.decision_set(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        hunk=-1,
        verdict="reject",
        expected="undecided",
    )

    with pytest.raises(services.StaleDecision) as refused:
        services.decision_set(
            membership=membership_of(owner),
            changeset=changeset,
            path=MONEY,
            hunk=1,
            verdict="accept",
            expected="undecided",
        )

    assert refused.value.current["hunk"] == -1
    assert refused.value.current["verdict"] == "reject"
    assert list(HunkDecision.objects.values_list("hunk", "verdict")) == [(-1, "reject")]


def test_a_file_whose_hunks_were_decided_meanwhile_is_refused_as_partial(
    project, propose, member, owner, membership_of
):
    changeset = propose(RENAME)
    services.decision_set(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        hunk=1,
        verdict="reject",
        expected="undecided",
    )

    with pytest.raises(services.StaleDecision) as refused:
        services.decision_set(
            membership=membership_of(owner),
            changeset=changeset,
            path=MONEY,
            hunk=-1,
            verdict="accept",
            expected="undecided",
        )

    assert refused.value.current["verdict"] == "partial"
    assert list(HunkDecision.objects.values_list("hunk", "verdict")) == [(1, "reject")]


def test_clearing_a_verdict_someone_else_just_changed_is_refused(
    project, propose, member, owner, membership_of
):
    changeset = propose(RENAME)
    services.decision_set(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        hunk=0,
        verdict="reject",
        expected="undecided",
    )

    with pytest.raises(services.StaleDecision):
        services.decision_set(
            membership=membership_of(owner),
            changeset=changeset,
            path=MONEY,
            hunk=0,
            verdict="clear",
            expected="accept",
        )

    assert HunkDecision.objects.get().verdict == "reject"


def test_the_review_page_shows_who_decided_a_file(
    client, project, propose, member, owner, membership_of
):
    changeset = propose(RENAME)
    services.decision_set(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        hunk=-1,
        verdict="accept",
        expected="undecided",
    )
    decided_at = HunkDecision.objects.get().decided_at.isoformat()
    client.force_login(owner)

    page = client.get(f"/w/acme/refactors/{changeset.session_id}/").content.decode()
    diff = client.get(
        f"/w/acme/refactors/{changeset.session_id}/proposals/{changeset.pk}/file/",
        {"path": MONEY},
    ).content.decode()

    assert f'data-by="{member.display_name}" data-at="{decided_at}"' in page
    assert f'data-hunk="0" data-verdict="accept" data-by="{member.display_name}"' in diff


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_the_same_hunk_at_once_end_with_one_stored_decision(
    project, propose, member, owner, membership_of
):
    changeset = propose(RENAME)
    start = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def decide(user, verdict: str) -> None:
        membership = membership_of(user)
        start.wait()
        try:
            outcomes[verdict] = services.decision_set(
                membership=membership,
                changeset=changeset,
                path=MONEY,
                hunk=0,
                verdict=verdict,
                expected="undecided",
            )
        except services.StaleDecision as error:
            outcomes[verdict] = error
        finally:
            connection.close()

    workers = [
        threading.Thread(target=decide, args=(member, "accept")),
        threading.Thread(target=decide, args=(owner, "reject")),
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)

    stored = HunkDecision.objects.get(changeset=changeset, path=MONEY, hunk=0)
    winner, loser = ("accept", "reject") if stored.verdict == "accept" else ("reject", "accept")
    assert isinstance(outcomes[winner], HunkDecision)
    refused = outcomes[loser]
    assert isinstance(refused, services.StaleDecision)
    assert refused.current["verdict"] == winner
    assert refused.current["by_id"] == stored.decided_by_id


def test_accepting_everything_over_verdicts_the_page_did_not_show_is_refused(
    project, propose, member, owner, membership_of
):
    changeset = propose(RENAME)
    services.decision_set(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        hunk=1,
        verdict="reject",
        expected="undecided",
    )

    with pytest.raises(services.StaleDecision) as refused:
        services.decisions_all(
            membership=membership_of(owner),
            changeset=changeset,
            verdict="accept",
            expected_version=0,
        )

    assert f"last by {member.display_name}" in refused.value.messages[0]
    assert list(HunkDecision.objects.values_list("hunk", "verdict")) == [(1, "reject")]
    services.decisions_all(
        membership=membership_of(owner), changeset=changeset, verdict="accept", expected_version=1
    )
    assert set(HunkDecision.objects.values_list("hunk", "verdict")) == {(-1, "accept")}
