"""What other apps do when one of their jobs ends, without generation importing them.

Chat registers a hook for ``kind="chat"`` (storing the answer, rendering it, counting tokens);
the worker and the job service run the hooks of a job's kind once it is finished and stored,
before ``job.finished`` goes out, so a follower that reacts to that event reads the result.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable

from apps.generation.models import GenerationJob

logger = logging.getLogger(__name__)

JobHook = Callable[[GenerationJob], None]
_hooks: dict[str, list[JobHook]] = defaultdict(list)


def on_job_finished(kind: str) -> Callable[[JobHook], JobHook]:
    """Register ``hook(job)`` to run when a job of ``kind`` ends (done, failed or cancelled)."""

    def register(hook: JobHook) -> JobHook:
        if hook not in _hooks[kind]:
            _hooks[kind].append(hook)
        return hook

    return register


def job_finished_hooks_run(job: GenerationJob) -> None:
    """Run the hooks of ``job.kind``; one failing hook is logged and does not stop the rest."""
    for hook in _hooks.get(job.kind, ()):
        try:
            hook(job)
        except Exception:
            logger.exception("Hook %s failed for job %s", getattr(hook, "__name__", hook), job.pk)
