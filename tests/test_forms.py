"""``qweb.forms.ActionForm``: one schema for form posts (text) and websocket frames (typed JSON)."""

from __future__ import annotations

import pytest
from django import forms
from django.core.exceptions import ValidationError

from qweb.forms import ActionForm


class Sample(ActionForm):
    name = forms.CharField(error_messages={"required": "Name it."})
    count = forms.IntegerField(error_messages={"invalid": "Count it.", "required": "Count it."})
    loud = forms.BooleanField(required=False)
    colour = forms.ChoiceField(
        choices=[("red", "Red"), ("blue", "Blue")],
        required=False,
        error_messages={"invalid_choice": "Pick a colour.", "invalid": "Pick a colour."},
    )


def test_a_post_converts_text_as_django_forms_do():
    data = Sample({"name": "x", "count": "3", "loud": "on", "colour": "red"}).cleaned()
    assert data == {"name": "x", "count": 3, "loud": True, "colour": "red"}


def test_a_frame_with_the_right_json_types_cleans_the_same():
    data = Sample.from_frame({"name": "x", "count": 3, "loud": True, "colour": "red"}).cleaned()
    assert data == {"name": "x", "count": 3, "loud": True, "colour": "red"}


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"count": "3"}, "count", "Count it."),  # a number as text
        ({"count": True}, "count", "Count it."),  # a boolean is no number
        ({"count": 3.0}, "count", "Count it."),
        ({"count": [3]}, "count", "Count it."),
        ({"name": ["x"]}, "name", "Name it."),  # a list is no text
        ({"name": 7}, "name", "Name it."),
        ({"loud": "on"}, "loud", None),
        ({"colour": ["red"]}, "colour", "Pick a colour."),
    ],
)
def test_a_frame_value_of_the_wrong_json_type_is_that_fields_error(changes, field, message):
    form = Sample.from_frame({"name": "x", "count": 3, **changes})
    with pytest.raises(ValidationError) as raised:
        form.cleaned()
    assert set(raised.value.error_dict) == {field}
    if message:
        assert raised.value.messages == [message]


def test_a_missing_field_is_required_and_unknown_keys_are_ignored():
    with pytest.raises(ValidationError) as raised:
        Sample.from_frame({"count": 1, "type": "sample", "extra": {"deep": 1}}).cleaned()
    assert raised.value.message_dict == {"name": ["Name it."]}


def test_a_frame_leaves_optional_fields_empty_when_absent_or_null():
    data = Sample.from_frame({"name": "x", "count": 1, "colour": None}).cleaned()
    assert data == {"name": "x", "count": 1, "loud": False, "colour": ""}
