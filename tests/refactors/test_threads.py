"""Conversation on the diff: threads (reply, resolve, reopen) that follow their line into
later proposals, and suggested changes that become a proposal when accepted."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.refactors import services
from apps.refactors.models import ChangeSet, HunkDecision, ReviewComment, Suggestion
from apps.refactors.selectors import file_threads, line_moved
from qweb.lib.diffs import line_changes, parse_diff
from tests.refactors.conftest import proposal_finish
from tests.refactors.test_flow import RENAME, read

MONEY = "billing/money.py"

# The rename's proposal, with two lines added at the top of money.py.
HEADER = '''billing/money.py
```python
<<<<<<< SEARCH
"""Money helpers."""
=======
"""Money helpers."""

# Amounts are Decimals.
>>>>>>> REPLACE
```
'''


@pytest.fixture
def broadcasts(monkeypatch):
    sent: list[dict] = []
    monkeypatch.setattr(
        "apps.refactors.services.threads.broadcast", lambda group, event: sent.append(event)
    )
    return sent


def thread_on(changeset, member, membership_of, line=11, body="Why this helper?"):
    return services.comment_add(
        membership=membership_of(member), changeset=changeset, path=MONEY, line=line, body=body
    )


def regenerated(changeset, owner, membership_of, answer):
    """The session's next proposal, regenerated and answered by 'the model' with ``answer``."""
    newer = services.refactor_regenerate(membership=membership_of(owner), session=changeset.session)
    return proposal_finish(newer, answer)


# Threads ---------------------------------------------------------------------------------------


def test_a_reply_joins_the_thread_and_is_announced(
    project, propose, member, owner, membership_of, broadcasts
):
    changeset = propose(RENAME)
    root = thread_on(changeset, member, membership_of)

    reply = services.comment_reply(
        membership=membership_of(owner), changeset=changeset, thread_id=root.pk, body=" Sure. "
    )

    assert (reply.thread, reply.body, reply.author, reply.line, reply.path) == (
        root,
        "Sure.",
        owner,
        root.line,
        MONEY,
    )
    [event] = broadcasts
    assert (event["type"], event["thread_id"], event["comment_id"], event["change"]) == (
        "thread.changed",
        root.pk,
        reply.pk,
        "reply",
    )
    assert event["by"] == owner.display_name


def test_a_thread_is_resolved_and_reopened_with_who_and_when(
    project, propose, member, owner, membership_of, broadcasts
):
    changeset = propose(RENAME)
    root = thread_on(changeset, member, membership_of)

    services.thread_resolve(membership=membership_of(owner), changeset=changeset, thread_id=root.pk)
    root.refresh_from_db()
    assert root.resolved and root.resolved_by == owner and root.resolved_at is not None

    with pytest.raises(ValidationError, match="already resolved"):
        services.thread_resolve(
            membership=membership_of(member), changeset=changeset, thread_id=root.pk
        )

    services.thread_reopen(membership=membership_of(member), changeset=changeset, thread_id=root.pk)
    root.refresh_from_db()
    assert not root.resolved and root.resolved_by is None
    assert [event["change"] for event in broadcasts] == ["resolved", "reopened"]


def test_a_viewer_cannot_reply_resolve_or_suggest_and_nothing_is_stored(
    project, propose, member, viewer, membership_of, broadcasts
):
    changeset = propose(RENAME)
    root = thread_on(changeset, member, membership_of)
    as_viewer = membership_of(viewer)

    with pytest.raises(PermissionDenied):
        services.comment_reply(
            membership=as_viewer, changeset=changeset, thread_id=root.pk, body="Me too"
        )
    with pytest.raises(PermissionDenied):
        services.thread_resolve(membership=as_viewer, changeset=changeset, thread_id=root.pk)
    with pytest.raises(PermissionDenied):
        services.suggestion_add(
            membership=as_viewer, changeset=changeset, path=MONEY, start=6, length=1, suggested="x"
        )

    assert ReviewComment.objects.count() == 1
    assert not ReviewComment.objects.get().resolved
    assert not Suggestion.objects.exists()
    assert broadcasts == []


def test_a_reply_that_is_empty_or_names_no_thread_of_the_session_is_refused(
    project, propose, member, membership_of, broadcasts
):
    changeset = propose(RENAME)
    root = thread_on(changeset, member, membership_of)
    other = propose(RENAME)
    elsewhere = thread_on(other, member, membership_of)
    reply = services.comment_reply(
        membership=membership_of(member), changeset=changeset, thread_id=root.pk, body="More"
    )
    broadcasts.clear()

    for thread_id, body in [(root.pk, "   "), (elsewhere.pk, "Hi"), (reply.pk, "Hi")]:
        with pytest.raises(ValidationError):
            services.comment_reply(
                membership=membership_of(member),
                changeset=changeset,
                thread_id=thread_id,
                body=body,
            )

    assert ReviewComment.objects.count() == 3
    assert broadcasts == []


# Threads carried to later proposals --------------------------------------------------------


def test_a_line_moves_by_the_hunks_before_it_and_is_gone_when_changed():
    diff = parse_diff(
        "diff --git a/f b/f\n--- a/f\n+++ b/f\n"
        "@@ -2,0 +3,2 @@\n+a\n+b\n"
        "@@ -5 +7 @@\n-old\n+new\n"
        "@@ -9,2 +10,0 @@\n-x\n-y\n"
    )[0]

    assert [line_moved(diff, line) for line in (1, 2, 3, 5, 6, 9, 10, 11)] == [
        1,
        2,
        5,
        None,
        8,
        None,
        None,
        11,
    ]
    assert line_moved(None, 7) == 7


def test_a_thread_follows_its_moved_line_into_a_regenerated_proposal(
    project, propose, owner, member, membership_of
):
    first = propose(RENAME)
    kept = thread_on(first, member, membership_of, line=11)  # def helper_0
    gone = thread_on(first, member, membership_of, line=6, body="Name?")  # the renamed def
    services.comment_reply(
        membership=membership_of(owner), changeset=first, thread_id=gone.pk, body="Fine."
    )

    # The new proposal adds two lines at the top and does not rename.
    second = regenerated(first, owner, membership_of, HEADER)

    threads = {thread.root.pk: thread for thread in file_threads(second, MONEY)}
    assert read(project, second.commit, MONEY).splitlines()[12] == "def helper_0(value):"
    assert (threads[kept.pk].line, threads[kept.pk].outdated, threads[kept.pk].carried) == (
        13,
        False,
        True,
    )
    assert threads[gone.pk].outdated
    assert threads[gone.pk].snippet == "def total_including_tax(amount, rate):"
    assert [c.body for c in threads[gone.pk].comments] == ["Name?", "Fine."]
    # Read, not rewritten: the stored rows keep the line they were made on.
    assert ReviewComment.objects.get(pk=kept.pk).line == 11
    # On its own proposal a thread stays where it was made.
    assert {t.root.pk: t.line for t in file_threads(first, MONEY)} == {kept.pk: 11, gone.pk: 6}


def test_a_carried_thread_takes_replies_from_the_newer_proposals_page(
    project, propose, owner, member, membership_of
):
    first = propose(RENAME)
    root = thread_on(first, member, membership_of)
    second = regenerated(first, owner, membership_of, HEADER)

    reply = services.comment_reply(
        membership=membership_of(owner), changeset=second, thread_id=root.pk, body="Still here"
    )
    services.thread_resolve(membership=membership_of(owner), changeset=second, thread_id=root.pk)

    assert reply.changeset_id == first.pk
    [thread] = file_threads(second, MONEY)
    assert thread.root.resolved and [c.body for c in thread.replies] == ["Still here"]


# Suggestions -------------------------------------------------------------------------------


def test_a_suggestion_shows_as_the_lines_it_changes():
    assert line_changes("a\nb\nc\n", "a\nB\nc\n") == [
        ("context", "a"),
        ("remove", "b"),
        ("add", "B"),
        ("context", "c"),
    ]


def test_an_accepted_suggestion_becomes_a_proposal_with_its_lines_and_the_other_verdicts(
    project, propose, owner, member, membership_of
):
    changeset = propose(RENAME)
    services.decision_set(
        membership=membership_of(owner),
        changeset=changeset,
        path="billing/views.py",
        hunk=-1,
        verdict="accept",
    )
    suggestion = services.suggestion_add(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        start=6,
        length=1,
        suggested="def total_including_vat(amount, rate):",
    )
    assert suggestion.original == "def total_including_tax(amount, rate):\n"

    newer = services.suggestion_accept(
        membership=membership_of(owner), changeset=changeset, suggestion_id=suggestion.pk
    )

    lines = read(project, newer.commit, MONEY).splitlines()
    assert lines[5] == "def total_including_vat(amount, rate):"
    assert lines[6] == '    """The amount with tax added."""'
    assert (newer.number, newer.parent_id, newer.kind) == (2, changeset.pk, ChangeSet.Kind.MANUAL)
    assert "suggested" in newer.results[0]["reason"]
    suggestion.refresh_from_db()
    assert (suggestion.state, suggestion.decided_by, suggestion.result) == (
        Suggestion.State.ACCEPTED,
        owner,
        newer,
    )
    assert list(
        HunkDecision.objects.filter(changeset=newer).values_list("path", "hunk", "verdict")
    ) == [("billing/views.py", -1, "accept")]


def test_a_suggestion_on_lines_the_proposal_changed_since_is_refused_and_stores_nothing(
    project, propose, owner, member, membership_of
):
    changeset = propose(RENAME)
    suggestion = services.suggestion_add(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        start=6,
        length=1,
        suggested="def total_including_vat(amount, rate):",
    )
    # Someone edits the file by hand first: its line 6 says something else now.
    text = read(project, changeset.commit, MONEY).replace("total_including_tax", "total_gross")
    services.changeset_edit_file(
        membership=membership_of(owner), changeset=changeset, path=MONEY, content=text
    )

    with pytest.raises(ValidationError, match="no longer has the lines"):
        services.suggestion_accept(
            membership=membership_of(owner), changeset=changeset, suggestion_id=suggestion.pk
        )

    assert ChangeSet.objects.count() == 2
    suggestion.refresh_from_db()
    assert (suggestion.state, suggestion.decided_by, suggestion.result) == ("open", None, None)


def test_a_dismissed_suggestion_cannot_be_accepted(project, propose, owner, member, membership_of):
    changeset = propose(RENAME)
    suggestion = services.suggestion_add(
        membership=membership_of(member),
        changeset=changeset,
        path=MONEY,
        start=6,
        length=1,
        suggested="def total(amount, rate):",
    )
    services.suggestion_dismiss(
        membership=membership_of(owner), changeset=changeset, suggestion_id=suggestion.pk
    )

    with pytest.raises(ValidationError, match="dismissed already"):
        services.suggestion_accept(
            membership=membership_of(owner), changeset=changeset, suggestion_id=suggestion.pk
        )
    assert ChangeSet.objects.count() == 1


@pytest.mark.parametrize(
    ("start", "length", "suggested"),
    [(0, 1, "x"), (44, 9, "x"), (6, 1, "def total_including_tax(amount, rate):")],
)
def test_a_suggestion_outside_the_file_or_changing_nothing_is_refused(
    project, propose, member, membership_of, start, length, suggested
):
    changeset = propose(RENAME)
    with pytest.raises(ValidationError):
        services.suggestion_add(
            membership=membership_of(member),
            changeset=changeset,
            path=MONEY,
            start=start,
            length=length,
            suggested=suggested,
        )
    assert not Suggestion.objects.exists()
