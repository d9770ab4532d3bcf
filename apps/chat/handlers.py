"""Chat's part when a generation job ends (registered in ``ChatConfig.ready``)."""

from __future__ import annotations

from apps.chat.services import answer_finish
from apps.generation.hooks import on_job_finished
from apps.generation.models import GenerationJob


@on_job_finished("chat")
def chat_answer_store(job: GenerationJob) -> None:
    answer_finish(job=job)
