from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from qweb.leasing import LeasedRow


class GenerationJob(LeasedRow):
    """One generation: the prompt, its parameters, and the text as far as it got.

    The row is the truth; the channel layer only delivers deltas. ``text`` and ``seq`` are
    checkpointed by the worker about every second and at the end, so a client that
    reconnects, or a worker that retries after a crash, starts from here.
    """

    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=32, default="chat")
    messages = models.JSONField()
    params = models.JSONField(default=dict)
    text = models.TextField(blank=True)
    seq = models.PositiveIntegerField(default=0)
    finish_reason = models.CharField(max_length=16, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cancel_requested = models.BooleanField(default=False)
    model_name = models.CharField(max_length=200, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "created_at"], name="generation_job_claim")]

    def __str__(self) -> str:
        return f"job {self.pk} ({self.state})"


class WorkerHeartbeat(models.Model):
    """What each inference worker last reported, for the admins' view of the fleet."""

    worker = models.CharField(max_length=128, unique=True)
    host = models.CharField(max_length=255)
    device = models.CharField(max_length=255)
    backend = models.CharField(max_length=32)
    model_name = models.CharField(max_length=200)
    memory_bytes = models.PositiveBigIntegerField(default=0)
    tokens_per_second = models.FloatField(default=0.0)
    running = models.PositiveIntegerField(default=0)
    queue_depth = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now)
    stopping = models.BooleanField(default=False)

    def __str__(self) -> str:
        return self.worker
