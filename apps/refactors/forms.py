"""What each refactor action takes: one form per action, for the page's posts and the socket.

The forms check shape (types, choices, the range a stored number can hold); the services
check values against what is stored (the file is in the proposal, the hunk exists, the
text is not empty nor too long, the proposal is still the one to review).
"""

from __future__ import annotations

from django import forms

from apps.refactors.models import (
    APPROVER_ROLES,
    ApplyTarget,
    HunkDecision,
    ProposalReview,
    ReviewComment,
)
from apps.refactors.services.policy import MAX_REQUIRED_APPROVALS
from apps.refactors.services.review import UNDECIDED
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
    # The verdict the page showed (see ``services.decision_set``); left out: not compared.
    expected = forms.ChoiceField(
        choices=[
            (UNDECIDED, "Undecided"),
            *HunkDecision.Verdict.choices,
            ("partial", "Partly decided"),
        ],
        required=False,
        error_messages={
            key: "Say which verdict the page showed." for key in ("invalid", "invalid_choice")
        },
    )


class ReviewForm(ActionForm):
    """Approve the proposal or request changes, with an optional summary."""

    state = forms.ChoiceField(
        choices=ProposalReview.State.choices,
        error_messages={
            key: "Approve or request changes." for key in ("required", "invalid", "invalid_choice")
        },
    )
    summary = forms.CharField(
        required=False, strip=False, error_messages={"invalid": "A summary is text."}
    )


class DecideAllForm(ActionForm):
    verdict = forms.ChoiceField(
        choices=HunkDecision.Verdict.choices,
        error_messages={
            key: "Accept or reject." for key in ("required", "invalid", "invalid_choice")
        },
    )
    # The proposal's ``decisions_version`` the page showed; left out: not compared.
    expected_version = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=2**31 - 1,
        error_messages={
            key: "Say which verdicts the page showed."
            for key in ("invalid", "min_value", "max_value")
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


class ThreadForm(ActionForm):
    """Resolve or reopen a thread (named by its first comment)."""

    thread_id = forms.IntegerField(
        error_messages={key: "No such thread in this session." for key in ("required", "invalid")}
    )


class ReplyForm(ThreadForm):
    body = forms.CharField(
        required=False, strip=False, error_messages={"invalid": "Write a comment first."}
    )


class SuggestionForm(ActionForm):
    """New text for a hunk's new-side lines ``start``..``start + length - 1``."""

    path = forms.CharField(max_length=4096, strip=False, error_messages={"required": NO_SUCH_FILE})
    start = forms.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        error_messages={
            key: "Suggest a change to lines of the proposed file."
            for key in ("required", "invalid", "min_value", "max_value")
        },
    )
    length = forms.IntegerField(
        min_value=1,
        max_value=2**31 - 1,
        error_messages={
            key: "Suggest a change to lines of the proposed file."
            for key in ("required", "invalid", "min_value", "max_value")
        },
    )
    suggested = forms.CharField(
        required=False, strip=False, error_messages={"invalid": "A suggestion is text."}
    )


class SuggestionDecisionForm(ActionForm):
    """Accept or dismiss a suggestion."""

    suggestion_id = forms.IntegerField(
        error_messages={
            key: "No such suggestion in this session." for key in ("required", "invalid")
        }
    )


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
    required_approvals = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_REQUIRED_APPROVALS,
        error_messages={
            key: f"Require 0 to {MAX_REQUIRED_APPROVALS} approvals."
            for key in ("invalid", "min_value", "max_value")
        },
    )
    requester_approval_counts = forms.BooleanField(required=False)
    approver_role = forms.ChoiceField(
        choices=[(role.value, role.label) for role in APPROVER_ROLES],
        required=False,
        error_messages={
            key: "Choose member, admin or owner." for key in ("invalid", "invalid_choice")
        },
    )

    def clean_approver_role(self) -> str | None:
        return self.cleaned_data["approver_role"] or None


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
