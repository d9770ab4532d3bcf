"""Refactor sessions and the model's proposals: the prompt, the job, fixes and stops."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.generation.models import GenerationJob
from apps.generation.services import job_cancel, job_submit
from apps.ops.services import task_enqueue
from apps.refactors.models import (
    ChangeSet,
    RefactorSession,
)
from apps.refactors.selectors import file_text
from apps.refactors.services.common import (
    _announce,
    _git_failures_refused,
    _indexed,
    _lock_session,
    _next_number,
    _session_state,
    in_scope,
)
from apps.repos.models import Repository
from apps.repos.turn import PromptError, turn_prompt_build
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.edits import (
    UnsafePath,
    clean_path,
)
from qweb.lib.gitstore import GitStore, GitStoreError
from qweb.ratelimit import rate_limit

MAX_SCOPE = 50
REFACTOR_PROMPT = """\
You are qweb's refactoring assistant, a senior engineer changing the repository "{name}" \
at commit {commit}. The repository map and the files below were selected for this change. \
Make the change the user asks for in every file that needs it. First say in a few lines what \
you will change, then give the edits, and nothing else, in exactly this format:

path/to/file.py
```python
<<<<<<< SEARCH
the exact lines to change, copied from the file with their indentation,
and enough surrounding lines to be unique in the file
=======
the lines that replace them
>>>>>>> REPLACE
```

Rules: one SEARCH/REPLACE block per change (several may follow each other); to create a \
file, leave SEARCH empty and put the whole file in REPLACE; to delete a file write a line \
`DELETE path/to/file.py`; to rename one, `RENAME old/path.py -> new/path.py`. Use the paths \
exactly as the file headers show them. Never invent file contents you have not seen."""
FIX_REQUEST = """\
Some of your edits could not be applied; the others are applied already, do not repeat \
them. For each failed edit below, give a corrected SEARCH/REPLACE block whose SEARCH part \
copies the current file exactly.

{failures}

Current contents of those files:

{files}"""


def _clean_scope(scope: str | list[str] | None, manifest: set[str]) -> list[str]:
    """Files or folders of the commit (a list, or text with one a line or commas between)."""
    if not scope:
        return []
    if isinstance(scope, str):
        scope = scope.replace(",", "\n").splitlines()
    cleaned: list[str] = []
    for item in scope:
        item = item.strip().strip("/")
        if not item:
            continue
        try:
            path = clean_path(item)
        except UnsafePath as error:
            raise ValidationError({"scope": f"{item!r}: {error}"}) from None
        if path not in manifest and not any(name.startswith(path + "/") for name in manifest):
            raise ValidationError({"scope": f"No file or folder {path!r} in this commit."})
        if path not in cleaned:
            cleaned.append(path)
    if len(cleaned) > MAX_SCOPE:
        raise ValidationError({"scope": f"Give at most {MAX_SCOPE} files or folders."})
    return cleaned


def _title(instruction: str) -> str:
    words = " ".join(instruction.split())
    return words if len(words) <= 90 else words[:89].rsplit(" ", 1)[0] + "…"


def refactor_create(
    *,
    membership: Membership,
    repository: Repository,
    instruction: str,
    ref: str = "",
    scope: str | list[str] | None = None,
) -> RefactorSession:
    """Start a refactor of ``repository`` at a branch (its default) and queue the first proposal."""
    ensure_can(membership, Action.CONTRIBUTE)
    if repository.workspace_id != membership.workspace_id:
        raise ValidationError({"repository": "Choose a repository of this workspace."})
    if not instruction.strip():
        raise ValidationError({"instruction": "Describe the change you want."})
    instruction = instruction.strip()
    limit = settings.QWEB_REFACTOR_MAX_INSTRUCTION_CHARS
    if len(instruction) > limit:
        raise ValidationError({"instruction": f"Instructions are limited to {limit:,} characters."})
    branch = ref.strip() or repository.default_branch
    store = GitStore(repository.store_path)
    try:
        sha = store.resolve_optional(f"refs/heads/{branch}")
    except GitStoreError:
        sha = None
    if sha is None:
        raise ValidationError({"ref": f"{branch!r} is not a branch of {repository.name}."})
    indexed = _indexed(repository, sha)
    scope_paths = _clean_scope(scope, {path for path, _, _ in indexed.manifest})
    rate_limit(
        f"refactor:{membership.user_id}",
        count=settings.QWEB_CHAT_RATE_COUNT,
        seconds=settings.QWEB_CHAT_RATE_SECONDS,
        what="refactor requests",
    )
    with transaction.atomic():
        session = RefactorSession.objects.create(
            workspace_id=membership.workspace_id,
            repository=repository,
            title=_title(instruction),
            instruction=instruction,
            base_branch=branch,
            base_commit=sha,
            scope=scope_paths,
            created_by_id=membership.user_id,
        )
        _proposal(session, membership, number=1)
    return session


def _proposal_messages(session: RefactorSession) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """The prompt of a proposal: the edit format, the map, scope files pinned, retrieval."""
    indexed = _indexed(session.repository, session.base_commit)
    sizes = {path for path, _, _ in indexed.manifest}
    pinned = [path for path in sorted(sizes) if session.scope and in_scope(path, session.scope)]
    instructions = REFACTOR_PROMPT
    if session.scope:
        instructions += " Change only files under: " + ", ".join(session.scope) + "."
    last_error: PromptError | None = None
    # Pin the scope's files while they fit; a large folder leaves the rest to retrieval.
    for count in (len(pinned), 20, 8, 0):
        try:
            turn = turn_prompt_build(
                repository=session.repository,
                ref=session.base_commit,
                question=session.instruction,
                history=[],
                pinned=pinned[:count],
                instructions=instructions,
                answer_tokens=settings.QWEB_REFACTOR_ANSWER_TOKENS,
            )
        except PromptError as error:
            last_error = error
            continue
        return turn.messages, turn.manifest
    raise ValidationError({"instruction": str(last_error)})


def _proposal(
    session: RefactorSession,
    membership: Membership,
    *,
    number: int,
    kind: str = ChangeSet.Kind.PROPOSAL,
    parent: ChangeSet | None = None,
    messages: list[dict[str, str]] | None = None,
    manifest: dict[str, Any] | None = None,
) -> ChangeSet:
    if messages is None:
        messages, manifest = _proposal_messages(session)
    job = job_submit(
        messages=messages,
        params={"max_new_tokens": (manifest or {}).get("answer_tokens", 1024)},
        kind="refactor",
        workspace_id=session.workspace_id,
        user_id=membership.user_id,
    )
    changeset = ChangeSet.objects.create(
        session=session,
        number=number,
        kind=kind,
        parent=parent,
        job=job,
        context=manifest or {},
        created_by_id=membership.user_id,
    )
    _session_state(session.pk, RefactorSession.State.PROPOSING)
    _announce(changeset)
    return changeset


def refactor_regenerate(*, membership: Membership, session: RefactorSession) -> ChangeSet:
    """Ask the model for a new proposal from scratch (reviews start again)."""
    ensure_can(membership, Action.CONTRIBUTE)
    with transaction.atomic():
        locked = _lock_session(session)
        return _proposal(locked, membership, number=_next_number(locked))


@_git_failures_refused
def refactor_fix_failed(*, membership: Membership, changeset: ChangeSet) -> ChangeSet:
    """Send the failed edits back to the model; its corrections apply on top of this proposal."""
    ensure_can(membership, Action.CONTRIBUTE)
    failed = [result for result in changeset.results if result["status"] == "refused"]
    if changeset.state != ChangeSet.State.READY or not failed:
        raise ValidationError("This proposal has no failed edits to fix.")
    if changeset.job is None:
        raise ValidationError("This proposal was edited by hand; regenerate it instead.")
    store = GitStore(changeset.session.repository.store_path)
    texts = []
    for path in sorted({result["path"] for result in failed if result.get("path")}):
        text = file_text(store, changeset.commit, path)
        if text is not None:
            texts.append(f"{path}\n```\n{text[:20_000]}\n```")
    failures = "\n".join(
        f"- {result.get('path') or '(no file)'}: {result['reason']}" for result in failed
    )
    messages = [
        *changeset.job.messages,
        {"role": "assistant", "content": changeset.answer},
        {
            "role": "user",
            "content": FIX_REQUEST.format(
                failures=failures, files="\n\n".join(texts) or "(none readable)"
            ),
        },
    ]
    with transaction.atomic():
        locked = _lock_session(changeset.session)
        return _proposal(
            locked,
            membership,
            number=_next_number(locked),
            kind=ChangeSet.Kind.FIX,
            parent=changeset,
            messages=messages,
            manifest=changeset.context,
        )


def changeset_stop(*, membership: Membership, changeset: ChangeSet) -> None:
    """Stop a proposal that is being written (what arrived so far is still applied)."""
    ensure_can(membership, Action.CONTRIBUTE)
    if changeset.job_id and changeset.state == ChangeSet.State.GENERATING:
        job_cancel(job_id=changeset.job_id)


def changeset_job_finished(job: GenerationJob) -> None:
    """The proposal's text is complete (or stopped, or failed): queue the edits' application."""
    changeset = ChangeSet.objects.filter(job_id=job.pk).first()
    if changeset is None or changeset.state != ChangeSet.State.GENERATING:
        return
    if job.state == GenerationJob.State.FAILED and not job.text:
        changeset.state = ChangeSet.State.FAILED
        changeset.error = job.error or "The model could not answer."
        changeset.save(update_fields=["state", "error"])
        _session_state(changeset.session_id, RefactorSession.State.FAILED)
        _announce(changeset)
        return
    with transaction.atomic():
        changeset.state = ChangeSet.State.BUILDING
        changeset.answer = job.text
        changeset.save(update_fields=["state", "answer"])
        task_enqueue(
            kind="refactor.build",
            payload={"changeset_id": changeset.pk},
            workspace_id=changeset.session.workspace_id,
        )
        _announce(changeset)
