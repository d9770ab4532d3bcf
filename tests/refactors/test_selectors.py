"""Review state as views and consumers read it: verdicts per file, accepted hunks, success rate."""

from __future__ import annotations

import pytest

from apps.refactors import services
from apps.refactors.models import RefactorSession
from apps.refactors.selectors import (
    accepted_hunks,
    decision_map,
    file_verdict,
    review_state,
)
from qweb.lib.diffs import WHOLE_FILE
from tests.refactors.test_flow import RENAME

pytestmark = pytest.mark.django_db

MONEY, VIEWS = "billing/money.py", "billing/views.py"

# A proposal whose second edit is refused: its SEARCH text is in no file.
HALF_REFUSED = """billing/money.py
```python
<<<<<<< SEARCH
def total_with_tax(amount, rate):
=======
def total_including_tax(amount, rate):
>>>>>>> REPLACE
<<<<<<< SEARCH
def no_such_function():
=======
def something_else():
>>>>>>> REPLACE
```
"""


@pytest.mark.parametrize(
    ("verdicts", "hunks", "expected"),
    [
        ({}, 2, ""),
        ({WHOLE_FILE: "accept"}, 2, "accept"),
        ({WHOLE_FILE: "reject", 0: "accept"}, 2, "reject"),  # the file's own verdict wins
        ({0: "accept", 1: "accept"}, 2, "accept"),
        ({0: "reject", 1: "reject"}, 2, "reject"),
        ({0: "accept"}, 2, "partial"),
        ({0: "accept", 1: "reject"}, 2, "partial"),
        ({0: "accept"}, 0, "partial"),  # a file without hunks is never all-decided
    ],
)
def test_a_files_verdict_adds_up_its_hunks(verdicts, hunks, expected):
    assert file_verdict(verdicts, hunks) == expected


def test_the_review_state_of_a_proposal_with_decisions(propose, owner, membership_of):
    changeset = propose(RENAME)
    membership = membership_of(owner)
    services.decision_set(
        membership=membership, changeset=changeset, path=MONEY, hunk=0, verdict="accept"
    )
    services.decision_set(
        membership=membership, changeset=changeset, path=VIEWS, hunk=WHOLE_FILE, verdict="reject"
    )

    review = review_state(session=changeset.session)

    assert review.current.pk == changeset.pk and review.is_latest
    assert {item["path"]: item["verdict"] for item in review.files} == {
        MONEY: "partial",
        VIEWS: "reject",
    }
    assert (
        review.decisions
        == decision_map(changeset)
        == {
            MONEY: {0: "accept"},
            VIEWS: {WHOLE_FILE: "reject"},
        }
    )
    assert accepted_hunks(changeset) == {MONEY: [0]}
    assert review.refused == [] and review.success_rate == 1.0
    assert review.high_findings == 0 and review.held_findings == []


def test_the_success_rate_counts_every_proposal_and_an_older_one_can_be_shown(
    propose, owner, membership_of
):
    first = propose(HALF_REFUSED)
    session = first.session
    second = services.refactor_regenerate(membership=membership_of(owner), session=session)
    propose.finish(second, RENAME)

    latest = review_state(session=session)
    older = review_state(session=session, proposal=str(first.number))

    assert latest.current.pk == second.pk and latest.is_latest
    assert older.current.pk == first.pk and not older.is_latest
    # 1 of 2 blocks applied in the first proposal, 4 of 4 in the second.
    assert latest.success_rate == older.success_rate == 5 / 6
    assert [row["reason"] for row in older.refused] and older.refused[0]["path"] == MONEY
    assert latest.refused == []


def test_a_session_without_proposals_has_an_empty_review(project, owner, membership_of):
    session = RefactorSession.objects.create(
        workspace_id=project.workspace_id,
        repository=project,
        title="Nothing yet",
        instruction="Nothing yet",
        base_branch="main",
        base_commit=project.head_sha,
        created_by=owner,
    )
    review = review_state(session=session)
    assert review.current is None and review.files == [] and review.success_rate is None
    assert not review.is_latest
