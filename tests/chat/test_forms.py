"""The chat actions' forms, bound to a page's POST and to a websocket frame alike."""

from __future__ import annotations

import pytest
from django.http import QueryDict

from apps.chat.forms import (
    ConversationNewForm,
    MessagePostForm,
    MessageStopForm,
    PinsForm,
    QuestionEditForm,
    RegenerateForm,
)


def _errors(form) -> list[str]:
    assert not form.is_valid()
    return [message for messages in form.errors.values() for message in messages]


def test_a_posted_question_and_its_checked_pins_are_read_from_the_page():
    form = MessagePostForm(QueryDict("text=Why%3F&pin=a.py&pin=b.py"))

    assert form.is_valid()
    assert form.cleaned_data == {"text": "Why?", "pinned": ["a.py", "b.py"], "parent_id": None}


def test_a_question_from_a_frame_without_pins_pins_nothing_more():
    form = MessagePostForm.from_frame({"type": "post", "text": "Why?"})

    assert form.is_valid()
    assert form.cleaned_data == {"text": "Why?", "pinned": [], "parent_id": None}


def test_a_missing_question_is_empty_and_left_to_the_service():
    form = MessagePostForm.from_frame({"type": "post"})

    assert form.is_valid()
    assert form.cleaned_data["text"] == ""


@pytest.mark.parametrize("text", [42, ["a question"], {"text": "a"}, True])
def test_a_question_that_is_not_text_is_refused(text):
    assert _errors(MessagePostForm.from_frame({"type": "post", "text": text})) == [
        "Write a question first."
    ]


@pytest.mark.parametrize("pinned", ["orders/models.py", [1, 2], {"a": 1}])
def test_pins_posted_with_a_question_must_be_a_list_of_paths(pinned):
    form = MessagePostForm.from_frame({"type": "post", "text": "Why?", "pinned": pinned})

    assert _errors(form) == ["Pins are a list of file paths."]


@pytest.mark.parametrize("pinned", ["orders/models.py", [1, 2], None, {"a": 1}])
def test_pins_must_be_a_list_of_paths(pinned):
    assert _errors(PinsForm.from_frame({"type": "pins", "pinned": pinned})) == [
        "Pins are a list of file paths."
    ]


def test_a_frame_must_name_the_pins_even_when_there_are_none():
    assert _errors(PinsForm.from_frame({"type": "pins"})) == ["Pins are a list of file paths."]
    assert PinsForm.from_frame({"type": "pins", "pinned": []}).is_valid()


def test_a_page_with_no_box_checked_unpins_everything():
    form = PinsForm(QueryDict(""))

    assert form.is_valid()
    assert form.cleaned_data == {"pinned": []}


@pytest.mark.parametrize("message_id", [None, "", "x", 1.5, True, [3]])
def test_an_answer_id_that_is_not_a_number_names_no_answer(message_id):
    assert _errors(MessageStopForm.from_frame({"message_id": message_id})) == [
        "There is no such answer in this conversation."
    ]


def test_an_answer_id_is_a_number_in_a_frame_and_digits_in_a_page():
    for form in (
        MessageStopForm.from_frame({"message_id": 7}),
        MessageStopForm(QueryDict("message_id=7")),
    ):
        assert form.is_valid()
        assert form.cleaned_data == {"message_id": 7}
    assert _errors(MessageStopForm.from_frame({"message_id": "7"})) == [
        "There is no such answer in this conversation."
    ]


def test_a_new_conversation_names_a_repository_of_this_workspace(
    workspace, shop, elsewhere_conversation
):
    elsewhere = elsewhere_conversation.repository

    for value in ["", "x", str(elsewhere.pk)]:
        form = ConversationNewForm(QueryDict(f"repository={value}"), workspace=workspace)
        assert _errors(form) == ["Choose one of this workspace's repositories."]
    form = ConversationNewForm(QueryDict(f"repository={shop.pk}&ref=+main+"), workspace=workspace)
    assert form.is_valid()
    assert (form.cleaned_data["repository"], form.cleaned_data["ref"]) == (shop, "main")


def test_a_question_names_the_answer_it_follows_or_none():
    assert MessagePostForm.from_frame({"text": "Why?", "parent_id": 7}).cleaned()["parent_id"] == 7
    assert MessagePostForm.from_frame({"text": "Why?"}).cleaned()["parent_id"] is None
    assert MessagePostForm(QueryDict("text=Why%3F&parent_id=7")).cleaned()["parent_id"] == 7
    assert _errors(MessagePostForm.from_frame({"text": "Why?", "parent_id": "7"})) == [
        "There is no such answer in this conversation."
    ]


def test_a_regenerate_names_an_answer():
    assert RegenerateForm.from_frame({"message_id": 3}).cleaned() == {"message_id": 3}
    assert _errors(RegenerateForm.from_frame({})) == [
        "There is no such answer in this conversation."
    ]


def test_an_edit_names_a_question_and_brings_its_new_text():
    form = QuestionEditForm.from_frame({"message_id": 3, "text": " Why? "})
    assert form.cleaned() == {"message_id": 3, "text": " Why? "}
    assert _errors(QuestionEditForm.from_frame({"text": "Why?"})) == [
        "There is no such question in this conversation."
    ]
    assert _errors(QuestionEditForm.from_frame({"message_id": 3, "text": 5})) == [
        "Write a question first."
    ]
