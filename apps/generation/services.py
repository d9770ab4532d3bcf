"""The job service: the one module through which chat and refactors use the model.

Submit messages and parameters, get a job id; follow its stream over the channel layer
(group ``job.<id>``, see ``events.py``) or read its stored state; cancel it.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.generation.events import JobFinished, job_group
from apps.generation.hooks import job_finished_hooks_run
from apps.generation.models import GenerationJob
from inference.events import FinishReason
from inference.params import CleanParams, ParamError, params_validate
from qweb.realtime import broadcast

ROLES = {"system", "user", "assistant"}


def clean_messages(messages: object) -> list[dict[str, str]]:
    """Check a chat: a non-empty list of {role, content} with known roles and text content."""
    if not isinstance(messages, list) or not messages:
        raise ValidationError({"messages": "Give at least one message."})
    cleaned = []
    for position, message in enumerate(messages, start=1):
        if not isinstance(message, dict) or set(message) - {"role", "content"}:
            raise ValidationError({"messages": f"Message {position} must have a role and content."})
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise ValidationError({"messages": f"Message {position} has an unknown role {role!r}."})
        if not isinstance(content, str):
            raise ValidationError({"messages": f"Message {position} must have text content."})
        cleaned.append({"role": role, "content": content})
    if cleaned[-1]["role"] == "assistant":
        raise ValidationError({"messages": "The last message must not be the assistant's."})
    return cleaned


def clean_params(params: Mapping[str, object] | None) -> CleanParams:
    """Check sampling parameters (`inference.params` holds the rules) and fill in the defaults."""
    try:
        return params_validate(params, max_new_tokens_limit=settings.QWEB_MAX_NEW_TOKENS)
    except ParamError as error:
        raise ValidationError({"params": str(error)}) from None


def job_submit(
    *,
    messages: object,
    params: Mapping[str, object] | None = None,
    kind: str = "chat",
    workspace_id: int | None = None,
    user_id: int | None = None,
) -> GenerationJob:
    """Queue a generation; a worker claims it once the transaction commits."""
    return GenerationJob.objects.create(
        kind=kind,
        messages=clean_messages(messages),
        params=clean_params(params),
        workspace_id=workspace_id,
        created_by_id=user_id,
    )


def job_finished_event(job: GenerationJob) -> JobFinished:
    return JobFinished(
        type="job.finished",
        job_id=job.pk,
        attempt=job.attempts,
        seq=job.seq,
        state=job.state,
        finish_reason=job.finish_reason,
        error=job.error,
        prompt_tokens=job.prompt_tokens,
        completion_tokens=job.completion_tokens,
    )


def job_cancel(*, job_id: int) -> GenerationJob:
    """Stop a job: a queued one at once; a running one at the worker's next check (< 1 s)."""
    with transaction.atomic():
        job = GenerationJob.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            return job
        if job.state == GenerationJob.State.QUEUED:
            job.state = GenerationJob.State.CANCELLED
            job.finish_reason = FinishReason.CANCELLED
            job.finished_at = timezone.now()
            job.save(update_fields=["state", "finish_reason", "finished_at"])
            job_finished_hooks_run(job)
            broadcast(job_group(job.pk), job_finished_event(job))
        else:
            job.cancel_requested = True
            job.save(update_fields=["cancel_requested"])
    return job


def job_result(*, job_id: int) -> GenerationJob:
    """The job as stored: its state, text so far and token counts."""
    return GenerationJob.objects.get(pk=job_id)
