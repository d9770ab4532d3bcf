"""The job service: the one module through which chat and refactors use the model.

Submit messages and parameters, get a job id; follow its stream over the channel layer
(group ``job.<id>``, see ``events.py``) or read its stored state; cancel it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.generation.events import JobFinished, job_group
from apps.generation.hooks import job_finished_hooks_run
from apps.generation.models import GenerationJob
from qweb.realtime import broadcast

ROLES = {"system", "user", "assistant"}
MAX_STOP_STRINGS = 4
MAX_STOP_LENGTH = 64


def clean_messages(messages: Any) -> list[dict[str, str]]:
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


def clean_params(params: Any) -> dict[str, Any]:
    """Check sampling parameters and fill in the defaults."""
    params = dict(params or {})
    unknown = set(params) - {"temperature", "top_p", "max_new_tokens", "stop", "seed"}
    if unknown:
        raise ValidationError({"params": f"Unknown parameters: {', '.join(sorted(unknown))}."})
    try:
        temperature = float(params.get("temperature", 0.0))
        top_p = float(params.get("top_p", 1.0))
        max_new_tokens = int(params.get("max_new_tokens", settings.QWEB_MAX_NEW_TOKENS))
        seed = None if params.get("seed") is None else int(params["seed"])
    except (TypeError, ValueError):
        raise ValidationError(
            {"params": "temperature, top_p, max_new_tokens and seed must be numbers."}
        ) from None
    if not 0.0 <= temperature <= 2.0:
        raise ValidationError({"params": "temperature must be between 0 and 2."})
    if not 0.0 < top_p <= 1.0:
        raise ValidationError({"params": "top_p must be above 0 and at most 1."})
    if not 1 <= max_new_tokens <= settings.QWEB_MAX_NEW_TOKENS:
        raise ValidationError(
            {"params": f"max_new_tokens must be between 1 and {settings.QWEB_MAX_NEW_TOKENS}."}
        )
    stop = params.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if (
        not isinstance(stop, list)
        or len(stop) > MAX_STOP_STRINGS
        or not all(isinstance(s, str) and 0 < len(s) <= MAX_STOP_LENGTH for s in stop)
    ):
        limit = f"up to {MAX_STOP_STRINGS} strings of 1–{MAX_STOP_LENGTH} characters"
        raise ValidationError({"params": f"stop takes {limit}."})
    return {
        "temperature": temperature,
        "top_p": top_p,
        "max_new_tokens": max_new_tokens,
        "stop": stop,
        "seed": seed,
    }


def job_submit(
    *,
    messages: Any,
    params: Any = None,
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
            job.finish_reason = "cancelled"
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
