"""The input of each chat action, one form per action, for the views and the consumer alike.

A view binds a form to ``request.POST``; the conversation consumer binds the same form to the
frame's dict (``ActionForm.from_frame``: JSON values keep their types, so a message id is a
number and the pins a list). The forms check the input's shape; the rules (sizes, quotas,
which files and answers exist) stay in the services.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.datastructures import MultiValueDict

from apps.chat.services import NO_QUESTION, NO_SUCH_ANSWER, NO_SUCH_QUESTION
from apps.repos.models import Repository
from apps.workspaces.models import Workspace
from qweb.forms import ActionForm

PINS_ARE_PATHS = "Pins are a list of file paths."
CHOOSE_REPOSITORY = "Choose one of this workspace's repositories."


class PathListInput(forms.Widget):
    """Paths as each side sends them: a page's form one ``pin`` per checked box, a websocket
    frame a JSON list under the field's name (``pinned``)."""

    form_name = "pin"

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if isinstance(data, MultiValueDict):  # request.POST
            return data.getlist(self.form_name)
        return data.get(name)

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return False


class PathListField(forms.Field):
    """A list of file paths (strings); a frame without any is an empty list if ``optional``."""

    widget = PathListInput
    default_error_messages = {"invalid": PINS_ARE_PATHS}

    def __init__(self, *, optional: bool, **kwargs: Any) -> None:
        super().__init__(required=False, **kwargs)
        self.optional = optional

    def to_python(self, value: Any) -> list[str]:
        if value is None and self.optional:
            return []
        if not isinstance(value, list) or not all(isinstance(path, str) for path in value):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return value


class AnswerIdField(forms.IntegerField):
    """The id of an answer in the conversation (the service checks that it is one)."""

    default_error_messages = {"required": NO_SUCH_ANSWER, "invalid": NO_SUCH_ANSWER}


class QuestionIdField(forms.IntegerField):
    """The id of a question in the conversation (the service checks that it is one)."""

    default_error_messages = {"required": NO_SUCH_QUESTION, "invalid": NO_SUCH_QUESTION}


def _question_field() -> forms.CharField:
    # Trimmed and measured by the service; a frame's text that is no string is no question.
    return forms.CharField(required=False, strip=False, error_messages={"invalid": NO_QUESTION})


class MessagePostForm(ActionForm):
    """Ask a question after an answer (the newest if none is given), pinning more files."""

    text = _question_field()
    pinned = PathListField(optional=True)
    parent_id = forms.IntegerField(required=False, error_messages={"invalid": NO_SUCH_ANSWER})


class MessageStopForm(ActionForm):
    """Stop an answer being written."""

    message_id = AnswerIdField()


class RegenerateForm(ActionForm):
    """Ask for an answer again (regenerate it, or retry a failed or stopped one)."""

    message_id = AnswerIdField()


class QuestionEditForm(ActionForm):
    """Ask a question again with new text: a new version of it."""

    message_id = QuestionIdField()
    text = _question_field()


class PinsForm(ActionForm):
    """Set the conversation's pinned files (all of them: none pinned is an empty list)."""

    pinned = PathListField(optional=False)


class ConversationRenameForm(ActionForm):
    title = forms.CharField(required=False)


class ConversationNewForm(ActionForm):
    """Start a conversation about one of the workspace's repositories, perhaps with a question."""

    repository = forms.ModelChoiceField(
        queryset=Repository.objects.none(),
        error_messages={"required": CHOOSE_REPOSITORY, "invalid_choice": CHOOSE_REPOSITORY},
    )
    ref = forms.CharField(required=False)
    title = forms.CharField(required=False)
    question = forms.CharField(required=False)

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["repository"].queryset = workspace.repositories.all()  # type: ignore[attr-defined]


# What each websocket action of a conversation reads from its frame.
ACTION_FORMS: dict[str, type[ActionForm]] = {
    "post": MessagePostForm,
    "stop": MessageStopForm,
    "pins": PinsForm,
    "regenerate": RegenerateForm,
    "edit": QuestionEditForm,
}
