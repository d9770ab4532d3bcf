"""Threads and suggestions without the websocket: plain forms on the diff, and what it shows."""

from __future__ import annotations

import re

import pytest

from apps.refactors import services
from apps.refactors.models import ChangeSet, ReviewComment, Suggestion
from tests.refactors.test_flow import RENAME, read
from tests.refactors.test_threads import HEADER, MONEY, regenerated
from tests.refactors.test_views import changeset_url, detail_url, file_url, messages_of


@pytest.fixture
def ready(propose):
    return propose(RENAME)


@pytest.fixture
def thread(ready, member, membership_of):
    return services.comment_add(
        membership=membership_of(member), changeset=ready, path=MONEY, line=11, body="Why?"
    )


def test_a_thread_shows_its_comments_with_authors_and_times_and_its_forms(
    client, ready, thread, owner, member, membership_of
):
    services.comment_reply(
        membership=membership_of(owner), changeset=ready, thread_id=thread.pk, body="Because."
    )
    client.force_login(member)

    html = client.get(file_url(ready)).content.decode()

    block = re.search(
        r'<div class="thread" id="thread-\d+".*?</form>\s*</div>\s*</div>', html, re.S
    )
    assert block, html
    text = block.group(0)
    assert "Why?" in text and "Because." in text
    assert text.count("<time datetime=") == 2
    assert member.display_name in text and owner.display_name in text
    assert 'data-resolved="false"' in text
    assert 'data-action="reply"' in text and 'data-action="resolve"' in text


def test_a_viewer_reads_threads_but_gets_no_forms(client, ready, thread, viewer):
    client.force_login(viewer)

    html = client.get(file_url(ready)).content.decode()

    assert "Why?" in html
    assert 'data-action="reply"' not in html and 'data-action="suggest"' not in html


def test_a_member_replies_resolves_and_reopens_with_plain_forms(client, ready, thread, member):
    client.force_login(member)

    replied = client.post(changeset_url("reply", ready), {"thread_id": thread.pk, "body": "Ok"})
    resolved = client.post(changeset_url("resolve", ready), {"thread_id": thread.pk})

    assert replied.status_code == resolved.status_code == 302
    assert replied["Location"] == detail_url(ready)
    thread.refresh_from_db()
    assert thread.resolved_by == member
    assert list(thread.replies.values_list("body", flat=True)) == ["Ok"]
    html = client.get(file_url(ready)).content.decode()
    assert 'data-resolved="true"' in html and "Resolved by" in html

    client.post(changeset_url("reopen", ready), {"thread_id": thread.pk})
    thread.refresh_from_db()
    assert not thread.resolved


def test_a_bad_reply_is_explained_and_saves_nothing(client, ready, thread, member):
    client.force_login(member)

    response = client.post(
        changeset_url("reply", ready), {"thread_id": "x", "body": "Ok"}, follow=True
    )

    assert messages_of(response) == ["No such thread in this session."]
    assert ReviewComment.objects.count() == 1


def test_viewers_cannot_reply_resolve_or_suggest(client, ready, thread, viewer):
    client.force_login(viewer)

    statuses = [
        client.post(changeset_url("reply", ready), {"thread_id": thread.pk, "body": "Hm"}),
        client.post(changeset_url("resolve", ready), {"thread_id": thread.pk}),
        client.post(
            changeset_url("suggest", ready),
            {"path": MONEY, "start": "6", "length": "1", "suggested": "x"},
        ),
    ]

    assert [response.status_code for response in statuses] == [403, 403, 403]
    assert ReviewComment.objects.count() == 1 and not thread.replies.exists()
    assert not Suggestion.objects.exists()


def test_a_carried_thread_shows_on_the_new_proposal_at_its_new_line_or_as_gone(
    client, ready, thread, owner, member, membership_of
):
    gone = services.comment_add(
        membership=membership_of(member), changeset=ready, path=MONEY, line=6, body="Name?"
    )
    newer = regenerated(ready, owner, membership_of, HEADER)
    client.force_login(member)

    html = client.get(file_url(newer, context="200")).content.decode()

    assert re.search(
        r'<tr class="ln-context" data-side="new" data-line="13">(?:(?!<tr class="ln-).)*?'
        rf'id="thread-{thread.pk}".*?From proposal 1, line 11 \(now line 13\)',
        html,
        re.S,
    )
    assert re.search(
        rf'id="thread-{gone.pk}".*?The line is gone.*?total_including_tax.*?Name\?', html, re.S
    )


def test_a_member_suggests_a_change_and_another_accepts_it_into_a_new_proposal(
    client, ready, member, owner, project
):
    client.force_login(member)
    html = client.get(file_url(ready)).content.decode()
    assert 'data-action="suggest"' in html and 'name="suggested"' in html

    client.post(
        changeset_url("suggest", ready),
        {"path": MONEY, "start": "6", "length": "1", "suggested": "def gross(amount, rate):"},
    )
    suggestion = Suggestion.objects.get()
    html = client.get(file_url(ready)).content.decode()
    assert re.search(r'data-testid="suggestion".*?gross\(amount', html, re.S)

    client.force_login(owner)
    response = client.post(
        changeset_url("suggestion_accept", ready), {"suggestion_id": suggestion.pk}, follow=True
    )

    newer = ChangeSet.objects.get(number=2)
    assert "Suggestion accepted: review proposal 2." in messages_of(response)
    assert read(project, newer.commit, MONEY).splitlines()[5] == "def gross(amount, rate):"


def test_a_stale_suggestion_is_refused_with_why(client, ready, member, owner, membership_of):
    suggestion = services.suggestion_add(
        membership=membership_of(member),
        changeset=ready,
        path=MONEY,
        start=6,
        length=1,
        suggested="def gross(amount, rate):",
    )
    services.changeset_edit_file(
        membership=membership_of(owner), changeset=ready, path=MONEY, content="VALUE = 1\n"
    )
    client.force_login(owner)

    response = client.post(
        changeset_url("suggestion_accept", ready), {"suggestion_id": suggestion.pk}, follow=True
    )

    [message] = messages_of(response)
    assert "no longer has the lines" in message
    assert ChangeSet.objects.count() == 2
