"""What each refactor action takes: one form per action, for the page's posts and the socket.

The forms check shape (types, choices, the range a stored number can hold); the services
check values against what is stored (the file is in the proposal, the hunk exists, the
text is not empty nor too long, the proposal is still the one to review).
"""

from __future__ import annotations

from django import forms

from apps.refactors.models import ApplyTarget, HunkDecision, ReviewComment
from apps.repos.models import Repository
from qweb.forms import ActionForm

NO_SUCH_FILE = "No such file in this proposal."


class ClearableVerdict(forms.ChoiceField):
    """A verdict, or "clear" to take one back."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(
            choices=[*HunkDecision.Verdict.choices, (HunkDecision.CLEAR, "Clear")],
            error_messages={
                "required": "Accept, reject or clear.",
                "invalid": "Accept, reject or clear.",
                "invalid_choice": "Accept, reject or clear.",
            },
            **kwargs,
        )


class ChangeSetForm(ActionForm):
    """Which proposal of the session a frame is about (a page names it in its URL)."""

    changeset_id = forms.IntegerField(
        error_messages={
            "required": "No such proposal in this session.",
            "invalid": "No such proposal in this session.",
        }
    )


class DecisionForm(ActionForm):
    path = forms.CharField(max_length=4096, strip=False, error_messages={"required": NO_SUCH_FILE})
    # -1 (qweb.lib.diffs.WHOLE_FILE): the file as a whole.
    hunk = forms.IntegerField(
        error_messages={key: "No such hunk in this file." for key in ("required", "invalid")}
    )
    verdict = ClearableVerdict()


class DecideAllForm(ActionForm):
    verdict = forms.ChoiceField(
        choices=HunkDecision.Verdict.choices,
        error_messages={
            key: "Accept or reject." for key in ("required", "invalid", "invalid_choice")
        },
    )


class CommentForm(ActionForm):
    path = forms.CharField(max_length=4096, strip=False, error_messages={"required": NO_SUCH_FILE})
    line = forms.IntegerField(
        error_messages={key: "Comment on a line of the diff." for key in ("required", "invalid")}
    )
    side = forms.ChoiceField(
        choices=ReviewComment.Side.choices,
        required=False,
        error_messages={
            key: "Comment on a line of the diff." for key in ("invalid", "invalid_choice")
        },
    )
    body = forms.CharField(
        required=False, strip=False, error_messages={"invalid": "Write a comment first."}
    )

    def clean_side(self) -> str:
        return self.cleaned_data["side"] or ReviewComment.Side.NEW


class ApplyForm(ActionForm):
    target = forms.ChoiceField(
        choices=ApplyTarget.choices,
        error_messages={
            key: "Apply to a new branch or to the base branch."
            for key in ("required", "invalid_choice")
        },
    )


class EditFileForm(ActionForm):
    path = forms.CharField(max_length=4096, error_messages={"required": NO_SUCH_FILE})
    content = forms.CharField(required=False, strip=False)

    def clean_content(self) -> str:
        return self.cleaned_data["content"].replace("\r\n", "\n")


class PolicyForm(ActionForm):
    block_on_high_findings = forms.BooleanField(required=False)
    allow_mode_changes = forms.BooleanField(required=False)
    allow_push = forms.BooleanField(required=False)


class RefactorForm(ActionForm):
    """A new refactor: a repository of the workspace, the instruction, a branch and a scope."""

    repository = forms.ModelChoiceField(
        queryset=Repository.objects.none(),
        error_messages={
            key: "Choose one of this workspace's repositories."
            for key in ("required", "invalid", "invalid_choice")
        },
    )
    instruction = forms.CharField(required=False, strip=False)
    branch = forms.CharField(max_length=255, required=False)
    # Files or folders, one a line (or separated by commas); empty: the whole repository.
    scope = forms.CharField(required=False)

    def __init__(self, *args: object, workspace_id: int, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["repository"].queryset = Repository.objects.filter(  # type: ignore[attr-defined]
            workspace_id=workspace_id
        )
