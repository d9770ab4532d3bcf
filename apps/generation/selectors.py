"""Reads for generation jobs."""

from __future__ import annotations

from apps.accounts.models import User
from apps.generation.models import GenerationJob
from apps.workspaces.roles import Action, can
from apps.workspaces.selectors import membership_find


def job_for_user(*, user_id: int | None, job_id: int) -> tuple[GenerationJob, bool] | None:
    """The job if the user may watch it now, and whether they may also stop it; else None.

    Jobs belong to their workspace, not to whoever started them: watching needs a current
    membership (any role), stopping a member's role — for the job's creator too, who loses
    both with the membership. Jobs outside any workspace (an operator's, from a benchmark
    or a script) are for active site staff only.
    """
    if user_id is None:
        return None
    job = GenerationJob.objects.filter(pk=job_id).first()
    if job is None:
        return None
    if job.workspace_id is None:
        staff = User.objects.filter(pk=user_id, is_active=True, is_staff=True).exists()
        return (job, True) if staff else None
    membership = membership_find(user_id=user_id, workspace_id=job.workspace_id)
    if membership is None:
        return None
    return job, can(membership.role, Action.CONTRIBUTE)
