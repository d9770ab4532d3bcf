"""An answer without edits has a state of its own, explained on the page, with regenerate one
click away; an answer whose edits all failed is not that, and keeps offering to fix them."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils.html import escape

from apps.generation.models import GenerationJob
from apps.refactors import services
from apps.refactors.models import Apply, ChangeSet, HunkDecision, RefactorSession

NO_EDITS = "Which currency should the totals use? Tell me & I will change them."
# One edit whose SEARCH text is nowhere in the file: refused.
ALL_REFUSED = (
    "billing/money.py\n```python\n<<<<<<< SEARCH\ndef nothing_like_this():\n=======\n"
    "def something():\n>>>>>>> REPLACE\n```\n"
)

# Two edits of views.py: the import applies, the second is refused.
ONE_OF_TWO_REFUSED = (
    "billing/views.py\n```python\n<<<<<<< SEARCH\n"
    "from billing.money import rounded, total_with_tax\n=======\n"
    "from billing.money import rounded, total_including_tax\n>>>>>>> REPLACE\n"
    "<<<<<<< SEARCH\n    return nothing_like_this()\n=======\n    return 1\n"
    ">>>>>>> REPLACE\n```\n"
)


def detail_url(changeset) -> str:
    return reverse("refactors:detail", args=["acme", changeset.session_id])


def test_an_answer_without_edits_ends_in_the_no_edits_state(propose):
    changeset = propose(NO_EDITS)

    assert changeset.state == ChangeSet.State.NO_EDITS
    assert changeset.error == "The model answered without proposing any edits."
    assert changeset.answer == NO_EDITS
    assert changeset.files == [] and changeset.results == []
    session = RefactorSession.objects.get(pk=changeset.session_id)
    assert session.state == RefactorSession.State.NO_EDITS


def test_an_answer_whose_edits_all_failed_is_ready_with_the_failures_to_fix(
    propose, owner, membership_of
):
    changeset = propose(ALL_REFUSED)

    assert changeset.state == ChangeSet.State.READY
    assert changeset.blocks_refused == 1 and changeset.files == []
    assert changeset.error == "None of the edits could be applied."
    session = RefactorSession.objects.get(pk=changeset.session_id)
    assert session.state == RefactorSession.State.REVIEW
    fix = services.refactor_fix_failed(membership=membership_of(owner), changeset=changeset)
    assert fix.kind == ChangeSet.Kind.FIX


def test_a_fix_answered_without_edits_keeps_the_previous_changes_reviewable(
    propose, owner, membership_of
):
    first = propose(ONE_OF_TWO_REFUSED)
    assert first.blocks_refused == 1
    fix = services.refactor_fix_failed(membership=membership_of(owner), changeset=first)

    fixed = propose.finish(fix, NO_EDITS)

    assert fixed.state == ChangeSet.State.READY
    assert [f["path"] for f in fixed.files] == ["billing/views.py"]
    assert fixed.error.startswith("The model answered without proposing any edits.")


def test_regenerating_from_no_edits_queues_a_new_proposal(propose, member, membership_of):
    changeset = propose(NO_EDITS)

    new = services.refactor_regenerate(membership=membership_of(member), session=changeset.session)

    assert (new.number, new.state) == (2, ChangeSet.State.GENERATING)
    assert new.job.state == GenerationJob.State.QUEUED
    session = RefactorSession.objects.get(pk=changeset.session_id)
    assert session.state == RefactorSession.State.PROPOSING


def test_applying_or_reviewing_a_proposal_without_edits_is_refused_with_the_reason(
    propose, owner, membership_of
):
    changeset = propose(NO_EDITS)
    membership = membership_of(owner)

    with pytest.raises(ValidationError, match=r"without proposing any edits.*regenerate"):
        services.changeset_apply(membership=membership, changeset=changeset)
    with pytest.raises(ValidationError, match="without proposing any edits"):
        services.decisions_all(membership=membership, changeset=changeset, verdict="accept")

    assert not Apply.objects.exists() and not HunkDecision.objects.exists()


# The pages -----------------------------------------------------------------------------------


def test_the_page_explains_no_edits_shows_the_answer_and_offers_to_regenerate(
    client, propose, member
):
    changeset = propose(NO_EDITS)
    client.force_login(member)

    html = client.get(detail_url(changeset)).content.decode()

    assert 'data-testid="no-edits"' in html
    assert "The model answered without proposing any edits." in html
    assert escape(NO_EDITS) in html
    assert 'data-testid="regenerate-no-edits"' in html
    assert reverse("refactors:regenerate", args=["acme", changeset.session_id]) in html
    assert 'data-testid="review"' not in html
    assert "Fix the failed edits" not in html


def test_viewers_see_the_explanation_without_the_button(client, propose, viewer):
    changeset = propose(NO_EDITS)
    client.force_login(viewer)

    html = client.get(detail_url(changeset)).content.decode()

    assert 'data-testid="no-edits"' in html
    assert 'data-testid="regenerate-no-edits"' not in html


def test_the_regenerate_button_queues_a_new_proposal(client, propose, member):
    changeset = propose(NO_EDITS)
    client.force_login(member)

    response = client.post(reverse("refactors:regenerate", args=["acme", changeset.session_id]))

    assert response.status_code == 302
    latest = ChangeSet.objects.filter(session_id=changeset.session_id).latest("number")
    assert (latest.number, latest.state) == (2, ChangeSet.State.GENERATING)
    assert latest.job.kind == "refactor"
    html = client.get(detail_url(changeset)).content.decode()
    assert 'data-testid="proposal-live"' in html


def test_a_proposal_whose_edits_all_failed_offers_the_fix_not_regenerate(client, propose, member):
    changeset = propose(ALL_REFUSED)
    client.force_login(member)

    html = client.get(detail_url(changeset)).content.decode()

    assert 'data-testid="no-edits"' not in html
    assert "1 edit could not be applied" in html and "Fix the failed edits" in html


def test_the_list_shows_the_no_edits_state(client, propose, viewer):
    propose(NO_EDITS)
    client.force_login(viewer)

    html = client.get(reverse("refactors:index", args=["acme"])).content.decode()

    assert '<span class="state state-no_edits">No edits proposed</span>' in html


def test_applying_on_the_page_is_refused_with_the_reason(client, propose, admin):
    changeset = propose(NO_EDITS)
    client.force_login(admin)

    response = client.post(
        reverse("refactors:apply", args=["acme", changeset.session_id, changeset.pk]),
        {"target": "branch"},
        follow=True,
    )

    assert [str(m) for m in response.context["messages"]] == [
        "The model answered without proposing any edits. There is nothing to review or "
        "apply: regenerate the proposal."
    ]
    assert not Apply.objects.exists()
