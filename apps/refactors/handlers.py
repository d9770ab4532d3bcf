"""Refactors' background parts: the job-finished hook and the build task."""

from __future__ import annotations

from typing import Any

from apps.generation.hooks import on_job_finished
from apps.generation.models import GenerationJob
from apps.ops.models import Task
from apps.ops.runner import Progress, register
from apps.refactors import services


@on_job_finished("refactor")
def refactor_proposal_written(job: GenerationJob) -> None:
    services.changeset_job_finished(job)


@register("refactor.build")
def refactor_build(task: Task, progress: Progress) -> dict[str, Any]:
    changeset = services.changeset_build(changeset_id=task.payload["changeset_id"])
    return {"state": changeset.state, "applied": changeset.blocks_applied}


@register("refactor.push")
def refactor_push(task: Task, progress: Progress) -> dict[str, Any]:
    record = services.apply_push(apply_id=task.payload["apply_id"])
    return {"pushed_at": record.pushed_at.isoformat() if record.pushed_at else None}
