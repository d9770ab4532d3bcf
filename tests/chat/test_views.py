"""The chat pages and their POST endpoints, through the Django test client, for each role."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from apps.chat import services
from apps.chat.models import Conversation, Message
from apps.generation.models import GenerationJob

QUESTION = "What does Invoice.total_with_tax return?"
JSON = {"HTTP_ACCEPT": "application/json"}


def _url(name: str, conversation: Conversation, *args: object) -> str:
    return reverse(f"chat:{name}", args=[conversation.workspace.slug, conversation.pk, *args])


def _flashed(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def _ask(membership_of, user, conversation, text=QUESTION) -> Message:
    """A question asked through the service, as the page's socket would; its pending answer."""
    return services.conversation_post_message(
        membership=membership_of(user), conversation=conversation, text=text
    )


def _nothing_stored() -> bool:
    return not Message.objects.exists() and not GenerationJob.objects.exists()


# Pages -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_every_role_sees_the_list_and_the_conversation(
    client, conversation, users_by_role, membership_of, owner, role
):
    answer = _ask(membership_of, owner, conversation)
    client.force_login(users_by_role[role])

    listed = client.get(reverse("chat:index", args=["acme"]))
    page = client.get(_url("detail", conversation))
    fragment = client.get(_url("message", conversation, answer.pk))

    assert listed.status_code == page.status_code == fragment.status_code == 200
    assert QUESTION in listed.content.decode()  # the title, taken from the first question
    assert QUESTION in page.content.decode()
    assert f'data-message-id="{answer.pk}"' in fragment.content.decode()


def test_members_get_the_composer_and_viewers_a_note_instead(client, conversation, member, viewer):
    client.force_login(member)
    assert 'id="composer"' in client.get(_url("detail", conversation)).content.decode()

    client.force_login(viewer)
    page = client.get(_url("detail", conversation)).content.decode()
    assert 'id="composer"' not in page
    assert 'id="viewer-note"' in page


def test_the_list_is_filtered_by_a_search(client, conversation, member, membership_of):
    services.conversation_rename(
        membership=membership_of(member), conversation=conversation, title="Receipts"
    )
    client.force_login(member)

    found = client.get(reverse("chat:index", args=["acme"]), {"q": "receipt"})
    missed = client.get(reverse("chat:index", args=["acme"]), {"q": "shipping"})

    assert "Receipts" in found.content.decode()
    assert "Receipts" not in missed.content.decode()


def test_an_unknown_message_fragment_is_404(client, conversation, member):
    client.force_login(member)

    assert client.get(_url("message", conversation, 12345)).status_code == 404


def test_path_suggestions_put_file_name_matches_first(client, conversation, member):
    client.force_login(member)

    response = client.get(_url("paths", conversation), {"q": "models"})

    assert response.status_code == 200
    body = response.json()
    assert body["indexed"] is True
    assert body["paths"][0] == "orders/models.py"


def test_anonymous_visitors_are_sent_to_sign_in(client, conversation):
    response = client.get(_url("detail", conversation))

    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


# Outsiders and other workspaces ----------------------------------------------------------------


POST_ENDPOINTS = ["post", "stop", "rename", "delete", "pins", "regenerate", "edit"]


def test_an_outsider_gets_404_for_every_chat_page(client, conversation, outsider):
    client.force_login(outsider)

    assert client.get(reverse("chat:index", args=["acme"])).status_code == 404
    for name in ["detail", "paths", "thread", "pins_panel"]:
        assert client.get(_url(name, conversation)).status_code == 404, name
    for name in POST_ENDPOINTS:
        assert client.post(_url(name, conversation), {"text": QUESTION}).status_code == 404, name
    assert Conversation.objects.filter(pk=conversation.pk).exists()
    assert _nothing_stored()


def test_another_workspaces_conversation_is_404_through_this_workspace(
    client, member, elsewhere_conversation
):
    client.force_login(member)
    foreign = reverse("chat:detail", args=["acme", elsewhere_conversation.pk])
    post = reverse("chat:post", args=["acme", elsewhere_conversation.pk])
    delete = reverse("chat:delete", args=["acme", elsewhere_conversation.pk])

    assert client.get(foreign).status_code == 404
    assert client.post(post, {"text": QUESTION}).status_code == 404
    assert client.post(delete).status_code == 404
    assert Conversation.objects.filter(pk=elsewhere_conversation.pk).exists()
    assert _nothing_stored()


# Viewers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", POST_ENDPOINTS)
def test_a_viewer_cannot_change_the_conversation(
    client, conversation, viewer, owner, membership_of, name
):
    answer = _ask(membership_of, owner, conversation)
    client.force_login(viewer)

    response = client.post(
        _url(name, conversation),
        {
            "text": "Another question",
            "title": "Mine now",
            "pin": "docs/notes.txt",
            "message_id": answer.pk,
        },
    )

    assert response.status_code == 403
    conversation.refresh_from_db()
    answer.refresh_from_db()
    assert (conversation.title, conversation.pinned_paths) == (QUESTION, [])
    assert answer.state == Message.State.PENDING
    assert Message.objects.count() == 2


def test_a_viewer_cannot_start_a_conversation(client, shop, viewer):
    client.force_login(viewer)

    response = client.post(
        reverse("chat:new", args=["acme"]), {"repository": shop.pk, "question": QUESTION}
    )

    assert response.status_code == 403
    assert not Conversation.objects.exists()


# Posting ---------------------------------------------------------------------------------------


def test_a_member_posts_a_question_and_returns_to_the_conversation(client, conversation, member):
    client.force_login(member)

    response = client.post(_url("post", conversation), {"text": QUESTION, "pin": "docs/notes.txt"})

    assert response.status_code == 302
    assert response["Location"] == _url("detail", conversation)
    question, answer = Message.objects.order_by("pk")
    assert (question.role, question.content, question.author) == ("user", QUESTION, member)
    assert (answer.state, answer.job.kind) == ("pending", "chat")
    assert answer.context["pinned"] == ["docs/notes.txt"]


def test_a_script_posting_json_gets_the_answer_and_its_job(client, conversation, member):
    client.force_login(member)

    response = client.post(_url("post", conversation), {"text": QUESTION}, **JSON)

    assert response.status_code == 201
    answer = Message.objects.get(role=Message.Role.ASSISTANT)
    assert response.json() == {"message_id": answer.pk, "job_id": answer.job_id}


@pytest.mark.parametrize("data", [{}, {"text": "   "}])
def test_an_empty_question_is_refused_with_the_reason_and_nothing_stored(
    client, conversation, member, data
):
    client.force_login(member)

    page = client.post(_url("post", conversation), data)
    script = client.post(_url("post", conversation), data, **JSON)

    assert page.status_code == 302
    assert _flashed(page) == ["Write a question first."]
    assert (script.status_code, script.json()) == (400, {"error": "Write a question first."})
    assert _nothing_stored()


def test_an_oversized_question_is_refused_with_the_limit(client, conversation, member, settings):
    settings.QWEB_CHAT_MAX_MESSAGE_CHARS = 100
    client.force_login(member)

    response = client.post(_url("post", conversation), {"text": "x" * 101}, **JSON)

    assert response.status_code == 400
    assert response.json()["error"] == "Messages are limited to 100 characters; this one has 101."
    assert _nothing_stored()


def test_pinning_an_unknown_file_with_a_question_is_refused(client, conversation, member):
    client.force_login(member)

    response = client.post(_url("post", conversation), {"text": QUESTION, "pin": "nope.py"})

    assert "nope.py" in " ".join(_flashed(response))
    assert _nothing_stored()


def test_a_second_question_while_an_answer_is_written_is_refused(
    client, conversation, member, membership_of
):
    _ask(membership_of, member, conversation)
    client.force_login(member)

    response = client.post(_url("post", conversation), {"text": "And then?"})

    assert _flashed(response) == ["An answer is still being written: wait for it or stop it first."]
    assert Message.objects.count() == 2


def test_over_the_rate_limit_htmx_gets_429_with_retry_after(
    client, conversation, member, chat_settings
):
    chat_settings.QWEB_CHAT_RATE_COUNT = 1
    client.force_login(member)
    client.post(_url("post", conversation), {"text": QUESTION})
    Message.objects.filter(role=Message.Role.ASSISTANT).update(state=Message.State.CANCELLED)

    htmx = client.post(_url("post", conversation), {"text": "Again?"}, HTTP_HX_REQUEST="true")
    page = client.post(_url("post", conversation), {"text": "Again?"})

    assert htmx.status_code == 429
    assert 0 < int(htmx["Retry-After"]) <= 3600
    assert "error" in htmx.json()
    assert page.status_code == 302
    assert len(_flashed(page)) == 1
    assert Message.objects.filter(role=Message.Role.USER).count() == 1


# Stop, rename, pins, delete --------------------------------------------------------------------


def test_a_member_stops_an_answer_being_written(client, conversation, member, membership_of):
    answer = _ask(membership_of, member, conversation)
    client.force_login(member)

    response = client.post(_url("stop", conversation), {"message_id": answer.pk})

    assert response.status_code == 302
    answer.refresh_from_db()
    assert answer.state == Message.State.CANCELLED
    assert answer.job.state == GenerationJob.State.CANCELLED


@pytest.mark.parametrize("message_id", ["", "x", "12345"])
def test_stopping_no_answer_is_refused_with_the_reason(client, conversation, member, message_id):
    client.force_login(member)

    response = client.post(_url("stop", conversation), {"message_id": message_id})

    assert _flashed(response) == ["There is no such answer in this conversation."]


def test_a_member_renames_the_conversation(client, conversation, member):
    client.force_login(member)

    client.post(_url("rename", conversation), {"title": "  Receipts   and tax "})

    conversation.refresh_from_db()
    assert conversation.title == "Receipts and tax"


@pytest.mark.parametrize(
    ("title", "reason"),
    [("   ", "Give the conversation a title."), ("x" * 201, "limited to 200 characters")],
)
def test_a_bad_title_is_refused_and_the_old_one_kept(client, conversation, member, title, reason):
    client.force_login(member)

    response = client.post(_url("rename", conversation), {"title": title})

    assert reason in " ".join(_flashed(response))
    conversation.refresh_from_db()
    assert conversation.title == "New conversation"


def test_checked_files_become_the_pins_and_none_checked_unpins(client, conversation, member):
    client.force_login(member)

    client.post(_url("pins", conversation), {"pin": ["docs/notes.txt", "orders/models.py"]})
    conversation.refresh_from_db()
    assert conversation.pinned_paths == ["docs/notes.txt", "orders/models.py"]

    client.post(_url("pins", conversation), {})
    conversation.refresh_from_db()
    assert conversation.pinned_paths == []


def test_pinning_an_unknown_file_is_refused_and_nothing_pinned(client, conversation, member):
    client.force_login(member)

    response = client.post(_url("pins", conversation), {"pin": ["docs/notes.txt", "nope.py"]})

    assert _flashed(response) == ["No such file in this commit: nope.py."]
    conversation.refresh_from_db()
    assert conversation.pinned_paths == []


def test_the_starter_deletes_the_conversation(client, conversation, owner):
    client.force_login(owner)

    response = client.post(_url("delete", conversation))

    assert response.status_code == 302
    assert response["Location"] == reverse("chat:index", args=["acme"])
    assert _flashed(response) == ["Deleted “New conversation”."]
    assert not Conversation.objects.exists()


def test_a_member_cannot_delete_someone_elses_conversation(client, conversation, member):
    client.force_login(member)

    assert client.post(_url("delete", conversation)).status_code == 403
    assert Conversation.objects.filter(pk=conversation.pk).exists()


# Starting a conversation -----------------------------------------------------------------------


def test_a_member_starts_a_conversation_with_a_question(client, shop, member):
    client.force_login(member)

    response = client.post(
        reverse("chat:new", args=["acme"]),
        {"repository": shop.pk, "ref": "", "title": "", "question": QUESTION},
    )

    conversation = Conversation.objects.get()
    assert response["Location"] == _url("detail", conversation)
    assert (conversation.ref, conversation.title) == ("main", QUESTION)
    assert list(conversation.messages.values_list("role", flat=True)) == ["user", "assistant"]


def test_a_conversation_without_a_question_starts_empty(client, shop, member):
    client.force_login(member)

    client.post(reverse("chat:new", args=["acme"]), {"repository": shop.pk, "title": "Later"})

    conversation = Conversation.objects.get()
    assert conversation.title == "Later"
    assert not conversation.messages.exists()


@pytest.mark.parametrize("repository", ["", "x", "elsewhere"])
def test_a_conversation_needs_a_repository_of_this_workspace(
    client, shop, member, elsewhere_conversation, repository
):
    if repository == "elsewhere":
        repository = elsewhere_conversation.repository.pk
    client.force_login(member)

    response = client.post(
        reverse("chat:new", args=["acme"]), {"repository": repository, "question": QUESTION}
    )

    assert response["Location"] == reverse("chat:index", args=["acme"])
    assert _flashed(response) == ["Choose one of this workspace's repositories."]
    assert list(Conversation.objects.all()) == [elsewhere_conversation]
    assert _nothing_stored()


def test_an_unknown_branch_is_refused_and_nothing_started(client, shop, member):
    client.force_login(member)

    response = client.post(
        reverse("chat:new", args=["acme"]), {"repository": shop.pk, "ref": "nope"}
    )

    assert _flashed(response) == ["'nope' is not a branch or commit of Shop."]
    assert not Conversation.objects.exists()


# Versions, regenerate and edit -----------------------------------------------------------------


def _answered(membership_of, user, conversation, text=QUESTION, answer="It doubles."):
    """A question with a finished answer (as if a worker had written it)."""
    pending = _ask(membership_of, user, conversation, text)
    Message.objects.filter(pk=pending.pk).update(
        state=Message.State.DONE, content=answer, html=f"<p>{answer}</p>"
    )
    GenerationJob.objects.filter(pk=pending.job_id).update(state=GenerationJob.State.DONE)
    pending.refresh_from_db()
    return pending


def test_a_member_regenerates_an_answer_and_the_page_opens_at_the_new_version(
    client, conversation, member, membership_of
):
    first = _answered(membership_of, member, conversation)
    client.force_login(member)

    response = client.post(_url("regenerate", conversation), {"message_id": first.pk})

    again = Message.objects.filter(role=Message.Role.ASSISTANT).latest("pk")
    assert response["Location"] == _url("detail", conversation) + f"?leaf={again.pk}"
    assert (again.parent_id, again.state) == (first.parent_id, Message.State.PENDING)
    page = client.get(response["Location"]).content.decode()
    assert f'id="m-{again.pk}"' in page
    assert f'id="m-{first.pk}"' not in page
    assert '<span class="version-count">2 / 2</span>' in page
    assert f'href="?leaf={first.pk}" data-show-version="{first.pk}"' in page
    # A question asked from this page (without JavaScript too) follows the answer it shows.
    assert f'name="parent_id" value="{again.pk}"' in page
    older = client.get(_url("detail", conversation), {"leaf": first.pk}).content.decode()
    assert f'name="parent_id" value="{first.pk}"' in older
    assert client.get(_url("detail", conversation), {"leaf": "x"}).status_code == 200


def test_an_older_version_is_shown_through_the_thread_fragment(
    client, conversation, member, viewer, membership_of
):
    first = _answered(membership_of, member, conversation)
    services.answer_regenerate(
        membership=membership_of(member), conversation=conversation, message_id=first.pk
    )
    client.force_login(viewer)

    fragment = client.get(_url("thread", conversation), {"leaf": first.pk}).content.decode()

    assert f'id="m-{first.pk}"' in fragment
    assert "It doubles." in fragment
    assert '<span class="version-count">1 / 2</span>' in fragment
    # Viewers navigate versions, but get no button they cannot use.
    assert "data-show-version" in fragment
    assert "data-regenerate" not in fragment
    assert "data-edit-open" not in fragment
    assert "data-stop" not in fragment


def test_members_get_regenerate_retry_and_edit_buttons(client, conversation, member, membership_of):
    done = _answered(membership_of, member, conversation)
    failed = _ask(membership_of, member, conversation, "And then?")
    Message.objects.filter(pk=failed.pk).update(state=Message.State.FAILED, error="Worker died.")
    client.force_login(member)

    page = client.get(_url("detail", conversation)).content.decode()

    assert f'data-regenerate="{done.pk}"' in page
    assert f'data-regenerate="{failed.pk}"' in page
    assert 'aria-label="Retry"' in page and 'aria-label="Regenerate"' in page
    assert f'data-edit-open="{done.parent_id}"' in page
    assert f'<form class="msg-edit" data-edit="{done.parent_id}"' in page


def test_a_member_edits_a_question_and_asks_again(client, conversation, member, membership_of):
    first = _answered(membership_of, member, conversation)
    client.force_login(member)

    response = client.post(
        _url("edit", conversation), {"message_id": first.parent_id, "text": "What is a receipt?"}
    )

    edited = Message.objects.filter(role=Message.Role.USER).latest("pk")
    answer = Message.objects.get(parent=edited)
    assert response["Location"] == _url("detail", conversation) + f"?leaf={answer.pk}"
    assert (edited.content, edited.parent_id) == ("What is a receipt?", None)
    assert Message.objects.filter(role=Message.Role.USER).count() == 2


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("regenerate", {"message_id": "x"}, "There is no such answer in this conversation."),
        (
            "edit",
            {"message_id": "", "text": "Why?"},
            "There is no such question in this conversation.",
        ),
        ("edit", {"text": "  "}, "There is no such question in this conversation."),
    ],
)
def test_a_bad_regenerate_or_edit_is_refused_with_the_reason_and_nothing_stored(
    client, conversation, member, membership_of, name, data, reason
):
    _answered(membership_of, member, conversation)
    client.force_login(member)

    response = client.post(_url(name, conversation), data)

    assert response["Location"] == _url("detail", conversation)
    assert _flashed(response) == [reason]
    assert Message.objects.count() == 2


def test_regenerating_while_an_answer_is_written_is_refused(
    client, conversation, member, membership_of
):
    first = _answered(membership_of, member, conversation)
    _ask(membership_of, member, conversation, "And then?")
    client.force_login(member)

    response = client.post(_url("regenerate", conversation), {"message_id": first.pk})

    assert _flashed(response) == ["An answer is still being written: wait for it or stop it first."]
    assert Message.objects.count() == 4


def test_a_question_posted_from_the_page_follows_the_answer_it_names(
    client, conversation, member, membership_of
):
    first = _answered(membership_of, member, conversation, answer="Version one.")
    again = services.answer_regenerate(
        membership=membership_of(member), conversation=conversation, message_id=first.pk
    )
    Message.objects.filter(pk=again.pk).update(state=Message.State.DONE, content="Version two.")
    client.force_login(member)

    client.post(_url("post", conversation), {"text": "Why?", "parent_id": first.pk})

    question = Message.objects.get(content="Why?")
    assert question.parent_id == first.pk
    answer = Message.objects.get(parent=question)
    assert answer.job.messages[2] == {"role": "assistant", "content": "Version one."}


# The pinned panel and numbers ------------------------------------------------------------------


def test_the_pinned_panel_shows_each_pins_tokens_and_the_one_that_does_not_fit(
    client, conversation, member, viewer, membership_of, settings
):
    services.conversation_pins_set(
        membership=membership_of(member),
        conversation=conversation,
        paths=["docs/notes.txt", "orders/models.py"],
    )
    settings.QWEB_CONTEXT_TOKENS = 260  # room for the instructions and a little more
    client.force_login(member)

    panel = client.get(_url("pins_panel", conversation)).content.decode()
    page = client.get(_url("detail", conversation)).content.decode()

    assert 'data-pin-path="orders/models.py" data-fits="false"' in panel
    assert "Does not fit" in panel
    assert 'name="pin" value="orders/models.py" checked' in panel
    assert 'id="pins-panel"' in page and "Does not fit" in page
    client.force_login(viewer)
    viewer_panel = client.get(_url("pins_panel", conversation)).content.decode()
    assert "Does not fit" in viewer_panel
    assert 'type="checkbox"' not in viewer_panel
    assert "Keep checked" not in viewer_panel


def test_numbers_have_thousands_separators_and_icons_are_svg(
    client, conversation, member, workspace
):
    from django.utils import timezone

    from apps.chat.models import TokenUsage

    TokenUsage.objects.create(
        user=member, workspace=workspace, day=timezone.localdate(), prompt_tokens=12345
    )
    client.force_login(member)

    page = client.get(_url("detail", conversation)).content.decode()
    listed = client.get(reverse("chat:index", args=["acme"])).content.decode()

    assert '<strong id="usage-today" data-testid="usage-today">12,345</strong>' in page
    for html in (page, listed):
        assert "⎇" not in html and "⌕" not in html
