from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Conversation(models.Model):
    """A thread of questions about one repository at a branch or commit, shared by the workspace.

    ``ref`` is what the conversation follows: a branch (each answer uses the branch's newest
    indexed commit at the time it is asked) or a commit sha (every answer uses that commit).
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="conversations"
    )
    repository = models.ForeignKey(
        "repos.Repository", on_delete=models.CASCADE, related_name="conversations"
    )
    ref = models.CharField(max_length=255)
    title = models.CharField(max_length=200)
    pinned_paths = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-updated_at", "-pk"]
        indexes = [models.Index(fields=["workspace", "-updated_at"], name="chat_conv_recent")]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    """One turn of a conversation: a question, or the answer a generation job produced.

    An answer's ``content`` is filled from its job when the job ends (until then the job's
    checkpoint and live tail hold the text); ``context`` records what the prompt was built
    from, so the page can show which files went in and what each cost.

    Messages form a tree through ``parent``: an answer's parent is its question, a question's
    the answer it follows (none for a first question). Messages of one role with the same
    parent are versions of each other — a question's edits, an answer's regenerations — and
    a conversation as shown is one path from a first question down to a leaf.
    """

    class Role(models.TextChoices):
        USER = "user", "User"
        ASSISTANT = "assistant", "Assistant"

    class State(models.TextChoices):
        PENDING = "pending", "Generating"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Stopped"

    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    content = models.TextField(blank=True)
    html = models.TextField(blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DONE)
    error = models.TextField(blank=True)
    job = models.OneToOneField(
        "generation.GenerationJob",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="chat_message",
    )
    commit = models.CharField(max_length=40, blank=True)
    context = models.JSONField(default=dict, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [models.Index(fields=["conversation", "parent"], name="chat_msg_versions")]

    def __str__(self) -> str:
        return f"{self.role} message {self.pk}"

    @property
    def is_pending(self) -> bool:
        return self.state == self.State.PENDING


class TokenUsage(models.Model):
    """Tokens a member's questions cost in a workspace, per day: what quotas are checked against."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    workspace = models.ForeignKey(
        "workspaces.Workspace", on_delete=models.CASCADE, related_name="token_usage"
    )
    day = models.DateField()
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    answers = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "workspace", "day"], name="chat_usage_day")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.workspace_id} {self.day}"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
