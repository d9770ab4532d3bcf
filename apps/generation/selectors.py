"""Reads for generation jobs."""

from __future__ import annotations

from typing import Any

from apps.generation.models import GenerationJob
from apps.workspaces.models import Membership
from apps.workspaces.roles import Role


def job_for_user(*, user: Any, job_id: int) -> tuple[GenerationJob, bool] | None:
    """The job if ``user`` may watch it, and whether they may also cancel it; else None."""
    if not user.is_authenticated:
        return None
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is None:
        return None
    if job.created_by_id == user.pk:
        return job, True
    if job.workspace_id is None:
        return None
    membership = Membership.objects.filter(workspace_id=job.workspace_id, user=user).first()
    if membership is None:
        return None
    return job, Role(membership.role).at_least(Role.MEMBER)
