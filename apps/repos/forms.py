from __future__ import annotations

from django import forms


class UploadForm(forms.Form):
    name = forms.CharField(
        max_length=100, widget=forms.TextInput(attrs={"placeholder": "my-project"})
    )
    archive = forms.FileField(
        help_text="A .zip, .tar, .tar.gz, .tgz or .tar.xz of the project; its .git is ignored."
    )


class CloneForm(forms.Form):
    name = forms.CharField(max_length=100)
    url = forms.CharField(
        label="Git URL",
        max_length=2000,
        widget=forms.TextInput(attrs={"placeholder": "https://github.com/org/project.git"}),
    )
    branch = forms.CharField(
        max_length=255, required=False, help_text="Leave empty for the repository's default branch."
    )
    token = forms.CharField(
        label="Access token",
        required=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text="For private repositories. Stored encrypted; never shown again.",
    )


class UploadVersionForm(forms.Form):
    archive = forms.FileField(
        help_text="A newer archive of the same project; it becomes the next commit."
    )
