"""Input schemas shared by a page's form posts and its websocket frames.

An action someone can take from a page or over its socket is one Django form: the view binds
it to ``request.POST`` (text, as browsers send it), the consumer to the frame's JSON object
(``ActionForm.from_frame``). A frame keeps its JSON types, so each value must already have
its field's type: ``"6"`` is no line number there, ``true`` no hunk and a list no comment —
each is that field's invalid input, never converted. Both get the same messages.
"""

from __future__ import annotations

from typing import Any, Self

from django import forms
from django.core.exceptions import ValidationError


def _json_type_fits(field: forms.Field, value: object) -> bool:
    """Whether a frame's value has the JSON type the field takes (other fields check theirs)."""
    if isinstance(field, forms.BooleanField):
        return isinstance(value, bool)
    if isinstance(field, (forms.IntegerField, forms.ModelChoiceField)):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(field, (forms.CharField, forms.ChoiceField)):
        return isinstance(value, str)
    return True


class ActionForm(forms.Form):
    """A form that also validates a websocket frame, strictly typed (see the module)."""

    frame: bool = False

    @classmethod
    def from_frame(cls, content: dict[str, Any], **kwargs: Any) -> Self:
        form = cls(data={name: content.get(name) for name in cls.base_fields}, **kwargs)
        form.frame = True
        return form

    def _clean_fields(self) -> None:
        if not self.frame:
            super()._clean_fields()
            return
        wrong = {
            name
            for name, field in self.fields.items()
            if self.data.get(name) is not None and not _json_type_fits(field, self.data[name])
        }
        super()._clean_fields()
        for name in wrong:
            field = self.fields[name]
            message = field.error_messages.get("invalid") or field.error_messages["required"]
            self._errors.pop(name, None)
            self.add_error(name, ValidationError(message, code="invalid"))

    def cleaned(self) -> dict[str, Any]:
        """The cleaned values, or a ``ValidationError`` per field (what services raise too)."""
        if not self.is_valid():
            raise ValidationError(self.errors.as_data())
        return self.cleaned_data
