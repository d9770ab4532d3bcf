from __future__ import annotations

from django.db import models

from qweb.leasing import LeasedRow


class Task(LeasedRow):
    """Background work (imports, clones, indexing) claimed by workers with a lease.

    The row is the truth about the work: its state, progress and the user-facing error.
    A worker that dies leaves an expired lease; another worker retries the task until
    ``max_attempts`` is reached (``qweb.leasing``).
    """

    kind = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    progress = models.FloatField(default=0.0)
    progress_label = models.CharField(max_length=200, blank=True)
    result = models.JSONField(null=True, blank=True)
    workspace = models.ForeignKey(
        "workspaces.Workspace", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["state", "kind", "created_at"], name="ops_task_claim")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"
