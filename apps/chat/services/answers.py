"""An answer's end: its text stored from the job, its tokens counted once."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.chat.models import Message, TokenUsage
from apps.generation.models import GenerationJob
from qweb.lib.markdown import render_markdown

_FINAL_STATES = {
    GenerationJob.State.DONE: Message.State.DONE,
    GenerationJob.State.FAILED: Message.State.FAILED,
    GenerationJob.State.CANCELLED: Message.State.CANCELLED,
}


def answer_finish(*, job: GenerationJob) -> Message | None:
    """Store an ended job's text on its answer, rendered, and count its tokens once."""
    message = Message.objects.filter(job_id=job.pk).select_related("conversation").first()
    if message is None:
        return None
    state = _FINAL_STATES.get(job.state)
    if state is None:
        return None
    with transaction.atomic():
        updated = Message.objects.filter(pk=message.pk, state=Message.State.PENDING).update(
            state=state,
            content=job.text,
            html=render_markdown(job.text) if job.text else "",
            error=job.error,
            prompt_tokens=job.prompt_tokens,
            completion_tokens=job.completion_tokens,
        )
        if updated and job.created_by_id and (job.prompt_tokens or job.completion_tokens):
            _usage_add(
                user_id=job.created_by_id,
                workspace_id=message.conversation.workspace_id,
                prompt_tokens=job.prompt_tokens,
                completion_tokens=job.completion_tokens,
            )
    message.refresh_from_db()
    return message


def _usage_add(
    *, user_id: int, workspace_id: int, prompt_tokens: int, completion_tokens: int
) -> None:
    day = timezone.localdate()
    for _ in range(2):
        rows = TokenUsage.objects.filter(
            user_id=user_id, workspace_id=workspace_id, day=day
        ).update(
            prompt_tokens=F("prompt_tokens") + prompt_tokens,
            completion_tokens=F("completion_tokens") + completion_tokens,
            answers=F("answers") + 1,
        )
        if rows:
            return
        try:
            with transaction.atomic():
                TokenUsage.objects.create(
                    user_id=user_id,
                    workspace_id=workspace_id,
                    day=day,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    answers=1,
                )
            return
        except IntegrityError:  # created by a concurrent finish: add to it instead
            continue
