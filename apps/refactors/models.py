from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.workspaces.roles import Role
from qweb.lib.diffs import line_changes

# The roles a policy may require of approvers: viewers never review.
APPROVER_ROLES = (Role.MEMBER, Role.ADMIN, Role.OWNER)


class RefactorSession(models.Model):
    """A change someone asked for: an instruction, a repository at a base commit, a scope.

    Each proposal the model makes for it is a ``ChangeSet``; people review the latest one
    hunk by hunk and apply what they accept.
    """

    class State(models.TextChoices):
        PROPOSING = "proposing", "Proposing"
        REVIEW = "review", "In review"
        # The latest proposal's answer held no edits: nothing to review until regenerated.
        NO_EDITS = "no_edits", "No edits proposed"
        FAILED = "failed", "Failed"
        APPLIED = "applied", "Applied"

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="refactor_sessions"
    )
    repository = models.ForeignKey(
        "repos.Repository", on_delete=models.CASCADE, related_name="refactor_sessions"
    )
    title = models.CharField(max_length=200)
    instruction = models.TextField()
    base_branch = models.CharField(max_length=255)
    base_commit = models.CharField(max_length=40)
    scope = models.JSONField(default=list, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROPOSING)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-pk"]

    def __str__(self) -> str:
        return self.title

    @property
    def branch_name(self) -> str:
        return f"qweb/refactor-{self.pk}"


class ChangeSet(models.Model):
    """One proposal: the model's answer, how each edit applied, and the result as a git commit.

    ``commit`` is a commit on top of the session's base (or, for a fix of failed edits, on
    top of the previous proposal) kept under ``refs/qweb/changesets/<id>``; every diff shown
    is git's, from the session's base commit to it.
    """

    class Kind(models.TextChoices):
        PROPOSAL = "proposal", "Proposal"
        FIX = "fix", "Fix of failed edits"
        MANUAL = "manual", "Edited by hand"

    class State(models.TextChoices):
        GENERATING = "generating", "Generating"
        BUILDING = "building", "Applying edits"
        READY = "ready", "Ready for review"
        # The answer held no edit blocks (not: edits that all failed, which stay READY with
        # their reasons and can be fixed).
        NO_EDITS = "no_edits", "No edits proposed"
        FAILED = "failed", "Failed"

    session = models.ForeignKey(
        RefactorSession, on_delete=models.CASCADE, related_name="changesets"
    )
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PROPOSAL)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    job = models.OneToOneField(
        "generation.GenerationJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="changeset",
    )
    answer = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)
    commit = models.CharField(max_length=40, blank=True)
    results = models.JSONField(default=list, blank=True)
    files = models.JSONField(default=list, blank=True)
    findings = models.JSONField(default=list, blank=True)
    blocks_applied = models.PositiveIntegerField(default=0)
    blocks_refused = models.PositiveIntegerField(default=0)
    # Bumped by every verdict (under the row's lock): "accept all" names the one it saw.
    decisions_version = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.GENERATING)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["session", "number"]
        constraints = [
            models.UniqueConstraint(fields=["session", "number"], name="refactors_changeset_number")
        ]

    def __str__(self) -> str:
        return f"proposal {self.number} of {self.session_id}"

    @property
    def success_rate(self) -> float | None:
        total = self.blocks_applied + self.blocks_refused
        return None if total == 0 else self.blocks_applied / total

    @property
    def ref(self) -> str:
        return f"refs/qweb/changesets/{self.pk}"


class HunkDecision(models.Model):
    """A reviewer's verdict on one hunk of a file's diff (``hunk`` -1: the whole file)."""

    class Verdict(models.TextChoices):
        ACCEPT = "accept", "Accepted"
        REJECT = "reject", "Rejected"

    # Not stored: what a reviewer sends to take a verdict back.
    CLEAR = "clear"

    changeset = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="decisions")
    path = models.CharField(max_length=4096)
    hunk = models.IntegerField()
    verdict = models.CharField(max_length=8, choices=Verdict.choices)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["changeset", "path", "hunk"], name="refactors_decision_hunk"
            )
        ]

    def __str__(self) -> str:
        return f"{self.verdict} {self.path}#{self.hunk}"


class ReviewComment(models.Model):
    """A comment on a line of a proposal's diff: a thread's first comment, or a reply to one.

    A reply points at its thread's first comment (``thread``) and repeats its place; the
    first comment carries whether the thread is resolved. A thread stays on the proposal it
    was started on: pages of later proposals show it where git's diff between the two
    proposals moves its line (``selectors.file_threads``), or as outdated when the line
    changed.
    """

    class Side(models.TextChoices):
        OLD = "old", "Before"
        NEW = "new", "After"

    changeset = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="comments")
    path = models.CharField(max_length=4096)
    line = models.PositiveIntegerField()
    side = models.CharField(max_length=3, choices=Side.choices, default=Side.NEW)
    body = models.TextField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # None: this comment starts a thread.
    thread = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies"
    )
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"comment on {self.path}:{self.line}"

    @property
    def resolved(self) -> bool:
        return self.resolved_at is not None


class Suggestion(models.Model):
    """A reviewer's replacement for the new-side lines of a hunk of a proposal.

    Accepted, it becomes the session's next proposal (the hand-edit path) with lines
    ``start``..``start + length - 1`` of ``path`` replaced by ``suggested``; refused when the
    latest proposal no longer has ``original`` there.
    """

    class State(models.TextChoices):
        OPEN = "open", "Open"
        ACCEPTED = "accepted", "Accepted"
        DISMISSED = "dismissed", "Dismissed"

    changeset = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="suggestions")
    path = models.CharField(max_length=4096)
    start = models.PositiveIntegerField()
    length = models.PositiveIntegerField()
    original = models.TextField(blank=True)
    suggested = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.OPEN)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # The proposal an accepted suggestion became.
    result = models.ForeignKey(
        ChangeSet, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self) -> str:
        return f"suggestion on {self.path}:{self.start}"

    @property
    def last_line(self) -> int:
        return self.start + self.length - 1

    @property
    def changes(self) -> list[tuple[str, str]]:
        """The suggestion as a diff of the lines it replaces: ``(kind, text)`` per line."""
        return line_changes(self.original, self.suggested)


class ProposalReview(models.Model):
    """A reviewer's verdict on a whole proposal: approve it or ask for changes.

    One current review per reviewer and proposal (a new one replaces it). Reviews belong to
    one proposal, so a proposal that replaces it (regenerated, fixed, edited by hand) starts
    with none: approvals never carry over to code their reviewer has not seen.
    """

    class State(models.TextChoices):
        APPROVE = "approve", "Approved"
        REQUEST_CHANGES = "request_changes", "Changes requested"

    changeset = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    state = models.CharField(max_length=16, choices=State.choices)
    summary = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["changeset", "reviewer"], name="refactors_review_per_reviewer"
            )
        ]

    def __str__(self) -> str:
        return f"{self.state} by {self.reviewer_id} on {self.changeset_id}"


class ApplyTarget(models.TextChoices):
    """Where an apply commits: a new branch of the session, or the branch it started from."""

    BRANCH = "branch", "A new branch"
    BASE = "base", "The base branch"


class Apply(models.Model):
    """Every attempt to apply a proposal: who, when, onto what, and what came of it."""

    class State(models.TextChoices):
        APPLIED = "applied", "Applied"
        CONFLICT = "conflict", "Conflicts"
        BLOCKED = "blocked", "Blocked by findings"

    changeset = models.ForeignKey(ChangeSet, on_delete=models.CASCADE, related_name="applies")
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    target_branch = models.CharField(max_length=255)
    base_commit = models.CharField(max_length=40)
    branch_head = models.CharField(max_length=40, blank=True)
    result_commit = models.CharField(max_length=40, blank=True)
    patch_sha256 = models.CharField(max_length=64, blank=True)
    # The accepted hunks and the target, hashed: the same apply twice is done once.
    fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices)
    conflicts = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    pushed_at = models.DateTimeField(null=True, blank=True)
    push_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["changeset", "fingerprint"],
                condition=models.Q(state="applied"),
                name="refactors_apply_once",
            )
        ]

    def __str__(self) -> str:
        return f"apply {self.pk} ({self.state})"


class RefactorPolicy(models.Model):
    """What a workspace's admins allow when changes are applied."""

    workspace = models.OneToOneField(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="refactor_policy"
    )
    block_on_high_findings = models.BooleanField(default=True)
    allow_mode_changes = models.BooleanField(default=False)
    # Push applied branches of cloned repositories to their origin (with the stored token).
    allow_push = models.BooleanField(default=False)
    # Approvals of the latest proposal an apply needs (0: none), and who gives them.
    required_approvals = models.PositiveSmallIntegerField(default=0)
    requester_approval_counts = models.BooleanField(default=False)
    approver_role = models.CharField(
        max_length=16,
        choices=[(role.value, role.label) for role in APPROVER_ROLES],
        default=Role.MEMBER,
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"refactor policy of {self.workspace_id}"
