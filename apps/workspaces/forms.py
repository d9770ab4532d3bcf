from __future__ import annotations

from django import forms

from apps.workspaces.models import Workspace, slug_validator
from apps.workspaces.roles import Role


class LowercaseCharField(forms.CharField):
    def to_python(self, value: object) -> str:
        return super().to_python(value).strip().lower()


class WorkspaceCreateForm(forms.Form):
    name = forms.CharField(max_length=80, widget=forms.TextInput(attrs={"autofocus": True}))
    slug = LowercaseCharField(
        label="Address",
        max_length=50,
        validators=[slug_validator],
        help_text="Lowercase letters, digits and hyphens; part of every link into the workspace.",
    )


class WorkspaceRenameForm(forms.ModelForm):
    class Meta:
        model = Workspace
        fields = ["name"]


class WorkspaceDeleteForm(forms.Form):
    confirm_slug = forms.CharField(label="Type the workspace's address to confirm")


class InvitationForm(forms.Form):
    email = forms.EmailField(
        label="E-mail address", widget=forms.EmailInput(attrs={"placeholder": "name@example.com"})
    )
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)

    def __init__(self, *args: object, roles: list[Role] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if roles is not None:
            self.fields["role"].choices = [(role.value, role.label) for role in roles]  # type: ignore[attr-defined]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class SignUpForm(forms.Form):
    name = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autofocus": True}))
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}), strip=False
    )
    password_again = forms.CharField(
        label="Password again",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        strip=False,
    )

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("password") and data.get("password") != data.get("password_again"):
            self.add_error("password_again", "The two passwords differ.")
        return data
