"""Refactors: proposals from the model, review, and apply as git commits — every rule once.

Flow: ``refactor_create`` queues a proposal (a ``refactor`` generation job whose prompt
teaches the edit format); when the job ends, a ``refactor.build`` task applies the edits to
the base tree in memory (``qweb.lib.edits``: exact, then whitespace-, then
indentation-insensitive, then a bounded fuzzy match), writes the result as a commit under
``refs/qweb/changesets/<id>``, stores git's diff summary and the security scan. Reviewers
accept or reject hunks and comment; ``changeset_apply`` turns the accepted hunks into one
commit on a new branch or the base branch (a 3-way merge by git when the branch moved;
conflicts are reported and nothing is written).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.chat.prompt import PromptError, turn_prompt_build
from apps.generation.models import GenerationJob
from apps.generation.services import job_cancel, job_submit
from apps.ops.services import task_enqueue
from apps.refactors.events import (
    ApplyFinished,
    ChangeSetChanged,
    CommentAdded,
    DecisionChanged,
    session_group,
)
from apps.refactors.models import (
    Apply,
    ChangeSet,
    HunkDecision,
    RefactorPolicy,
    RefactorSession,
    ReviewComment,
)
from apps.repos.models import IndexedCommit, Repository
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.diffs import WHOLE_FILE, FileDiff, Hunk, diff_files, parse_diff
from qweb.lib.edits import (
    BINARY_FILE,
    FOLDER,
    SUBMODULE,
    SYMLINK,
    BinaryFile,
    NotAFile,
    UnsafePath,
    apply_answer,
    clean_path,
    parse_answer,
)
from qweb.lib.gitident import git_identity
from qweb.lib.gitpaths import path_refusal
from qweb.lib.gitstore import GitStore, GitStoreError
from qweb.lib.scan import ChangedFile, scan_changes
from qweb.ratelimit import rate_limit
from qweb.realtime import broadcast

logger = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _git_failures_refused(service: Callable[_P, _R]) -> Callable[_P, _R]:
    """A git failure in a service someone called becomes a refusal that names git's reason.

    The page shows it like any refusal (never a server error) and the service's transaction
    rolls back; the failure is logged, since a store that fails needs an administrator.
    """

    @functools.wraps(service)
    def refusing(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return service(*args, **kwargs)
        except GitStoreError as error:
            logger.exception("%s: git failed", service.__name__)
            raise ValidationError(f"The repository's git store failed: {error.message}") from None

    return refusing


MAX_SCOPE = 50
SCAN_TIMEOUT_S = 300.0
MAX_FILE_BYTES = 2 * 1024 * 1024
FORBIDDEN_MODES = {"120000": "a symbolic link", "160000": "a submodule"}
NO_EDITS_MESSAGE = "The model answered without proposing any edits."

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


# ---------------------------------------------------------------------------- sessions


def _clean_scope(scope: Any, manifest: set[str]) -> list[str]:
    if scope in (None, "", []):
        return []
    if isinstance(scope, str):
        scope = [line for line in scope.replace(",", "\n").splitlines()]
    if not isinstance(scope, list) or not all(isinstance(item, str) for item in scope):
        raise ValidationError({"scope": "The scope is a list of files or folders."})
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


def in_scope(path: str, scope: list[str]) -> bool:
    return not scope or any(path == item or path.startswith(item + "/") for item in scope)


def _indexed(repository: Repository, sha: str) -> IndexedCommit:
    indexed = IndexedCommit.objects.filter(
        repository=repository, sha=sha, state=IndexedCommit.State.READY
    ).first()
    if indexed is None:
        raise ValidationError(
            {"ref": f"Commit {sha[:12]} is still being indexed; start the refactor when it is."}
        )
    return indexed


def _title(instruction: str) -> str:
    words = " ".join(instruction.split())
    return words if len(words) <= 90 else words[:89].rsplit(" ", 1)[0] + "…"


def refactor_create(
    *,
    membership: Membership,
    repository: Repository,
    instruction: Any,
    ref: str = "",
    scope: Any = None,
) -> RefactorSession:
    """Start a refactor of ``repository`` at a branch (its default) and queue the first proposal."""
    ensure_can(membership, Action.CONTRIBUTE)
    if repository.workspace_id != membership.workspace_id:
        raise ValidationError({"repository": "Choose a repository of this workspace."})
    if not isinstance(instruction, str) or not instruction.strip():
        raise ValidationError({"instruction": "Describe the change you want."})
    instruction = instruction.strip()
    limit = settings.QWEB_REFACTOR_MAX_INSTRUCTION_CHARS
    if len(instruction) > limit:
        raise ValidationError({"instruction": f"Instructions are limited to {limit:,} characters."})
    branch = (ref or "").strip() or repository.default_branch
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


def _session_state(session_id: int, state: str) -> None:
    RefactorSession.objects.filter(pk=session_id).update(state=state, updated_at=timezone.now())


def _announce(changeset: ChangeSet) -> None:
    broadcast(
        session_group(changeset.session_id),
        ChangeSetChanged(
            type="changeset.changed",
            session_id=changeset.session_id,
            changeset_id=changeset.pk,
            number=changeset.number,
            state=changeset.state,
            job_id=changeset.job_id,
        ),
    )


def _next_number(session: RefactorSession) -> int:
    last = session.changesets.order_by("-number").values_list("number", flat=True).first()
    return (last or 0) + 1


def latest_changeset(session: RefactorSession) -> ChangeSet | None:
    return session.changesets.order_by("-number").first()


def _lock_session(session: RefactorSession) -> RefactorSession:
    locked = RefactorSession.objects.select_for_update().get(pk=session.pk)
    busy = locked.changesets.filter(
        state__in=[ChangeSet.State.GENERATING, ChangeSet.State.BUILDING]
    ).exists()
    if busy:
        raise ValidationError("A proposal is still being written: wait for it or stop it.")
    return locked


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
        text = _read_text(store, changeset.commit, path)
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


# ---------------------------------------------------------------------------- building


def _tree_files(store: GitStore, commit: str) -> dict[str, tuple[str, str]]:
    return {item.path: (item.sha, item.mode) for item in store.ls_tree(commit, recursive=True)}


def _read_text(store: GitStore, commit: str, path: str) -> str | None:
    entry = _tree_files(store, commit).get(path)
    if entry is None:
        return None
    blob = store.read_blob(entry[0], MAX_FILE_BYTES)
    if blob.truncated or b"\0" in blob.data[:8000]:
        return None
    return blob.data.decode("utf-8", errors="replace")


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


def edits_apply(
    store: GitStore, start: str, answer: str, scope: list[str]
) -> tuple[list[dict[str, Any]], dict[str, bytes | None]]:
    """Apply a model answer's edits to the tree of ``start`` in memory.

    Returns one result row per edit (applied how, with what confidence, or refused and why)
    and the new content of every changed file (``None``: deleted). Nothing is written.
    """
    files = _tree_files(store, start)
    folders = {path[:end] for path in files for end, char in enumerate(path) if char == "/"}

    def read_file(path: str) -> str | BinaryFile | NotAFile | None:
        entry = files.get(path)
        if entry is None:
            # Told apart from "nothing there", so no edit replaces a folder with a file.
            return FOLDER if path in folders else None
        # Links and submodules are never edited, nor written through; huge and non-UTF-8
        # files are never edited as text.
        if entry[1] in FORBIDDEN_MODES:
            return SYMLINK if entry[1] == "120000" else SUBMODULE
        blob = store.read_blob(entry[0], MAX_FILE_BYTES)
        if blob.truncated or b"\0" in blob.data[:8000]:
            return BINARY_FILE
        try:
            return blob.data.decode("utf-8")
        except UnicodeDecodeError:
            return BINARY_FILE

    def writable(path: str) -> str | None:
        return None if in_scope(path, scope) else "Outside the refactor's scope."

    outcome = apply_answer(parse_answer(answer), read_file, writable=writable)
    results = [_result_dict(result) for result in outcome.results]
    # A file keeps its applied blocks even when other blocks of it were refused.
    changes = {
        path: None if text is None else text.encode("utf-8") for path, text in outcome.files.items()
    }
    return results, changes


def edits_preview(*, repository: Repository, base: str, answer: str) -> dict[str, Any]:
    """What an answer's edits would do to ``base``: per-edit results and git's unified diff.

    The same code as a proposal's build, for ``manage.py apply_edits``; nothing is written
    to the repository (the diff is git's, of the changed files in a private folder).
    """
    store = GitStore(repository.store_path)
    try:
        commit = store.resolve_optional(base)
    except GitStoreError:
        commit = None
    if commit is None:
        raise ValidationError(f"{base!r} is not a commit of {repository.name}.")
    results, changes = edits_apply(store, commit, answer, [])
    files = _tree_files(store, commit)
    old = {
        path: store.read_blob(files[path][0], MAX_FILE_BYTES).data if path in files else None
        for path in changes
    }
    # Every path the proposal's commit would change, as git's diff of it lists them: a
    # RENAME is its two paths, an edit that leaves a file as it was is no change.
    changed = [
        {"path": path, "status": _change_status(old[path], new)}
        for path, new in sorted(changes.items())
        if old[path] != new
    ]
    diff = diff_files({path: (old[path], new) for path, new in changes.items()})
    applied = sum(row["status"] == "applied" for row in results)
    return {
        "repository": repository.pk,
        "base": commit,
        "applied": applied,
        "refused": len(results) - applied,
        "success_rate": round(applied / len(results), 4) if results else None,
        "files": _per_file(results),
        "changes": changed,
        "diff": diff,
    }


def _change_status(old: bytes | None, new: bytes | None) -> str:
    if old is None:
        return "added"
    return "deleted" if new is None else "modified"


def _per_file(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_path: dict[str, list[dict[str, Any]]] = {}
    for row in results:
        by_path.setdefault(row["path"] or "", []).append(row)
    return [
        {
            "path": path,
            "applied": sum(r["status"] == "applied" for r in rows),
            "refused": sum(r["status"] == "refused" for r in rows),
            "edits": rows,
        }
        for path, rows in by_path.items()
    ]


def changeset_build(*, changeset_id: int) -> ChangeSet:
    """Apply the proposal's edits to its base, write the result commit, diff and scan it."""
    changeset = ChangeSet.objects.select_related("session__repository", "parent").get(
        pk=changeset_id
    )
    session = changeset.session
    store = GitStore(session.repository.store_path)
    start = changeset.parent.commit if changeset.parent else session.base_commit
    if not start or store.resolve_optional(start) is None:
        return _build_failed(
            changeset, f"The base commit {start[:12]} no longer exists in the repository."
        )
    results, changes = edits_apply(store, start, changeset.answer, session.scope)
    applied = sum(row["status"] == "applied" for row in results)
    refused = len(results) - applied
    try:
        commit = (
            store.commit_changes(
                parent=start,
                changes=changes,
                ref=changeset.ref,
                author_name="qweb",
                author_email="qweb@localhost",
                message=f"Proposal {changeset.number}: {session.title}",
            )
            if changes
            else start
        )
        diff = parse_diff(store.diff(session.base_commit, commit)) if commit else []
    except GitStoreError as error:
        changeset.results = results
        return _build_failed(changeset, str(error))
    findings = _scan(store, session.base_commit, commit, diff)
    changeset.commit = commit
    changeset.results = results
    changeset.files = [item.summary() for item in diff]
    changeset.findings = [finding.as_dict() for finding in findings]
    changeset.blocks_applied = applied
    changeset.blocks_refused = refused
    # An answer without a single edit block leaves nothing to review: a state of its own,
    # so the page says so and offers to regenerate. Edits that were all refused are not
    # that: the proposal is ready, lists them and offers to fix them. A fix answered
    # without edits still carries its parent's changes, so it stays reviewable.
    no_edits = not results and not diff
    changeset.state = ChangeSet.State.NO_EDITS if no_edits else ChangeSet.State.READY
    if not results:
        changeset.error = NO_EDITS_MESSAGE + (
            "" if no_edits else " The previous proposal's changes are shown."
        )
    else:
        changeset.error = "" if diff else "None of the edits could be applied."
    changeset.save()
    _session_state(
        session.pk, RefactorSession.State.NO_EDITS if no_edits else RefactorSession.State.REVIEW
    )
    if changeset.parent_id:
        # A fix or a hand edit keeps the verdicts given on the files it did not change.
        unchanged = {item.path for item in diff} - _changed_since(store, changeset)
        for decision in HunkDecision.objects.filter(
            changeset_id=changeset.parent_id, path__in=unchanged
        ):
            HunkDecision.objects.get_or_create(
                changeset=changeset,
                path=decision.path,
                hunk=decision.hunk,
                defaults={"verdict": decision.verdict, "decided_by_id": decision.decided_by_id},
            )
    _announce(changeset)
    return changeset


def _build_failed(changeset: ChangeSet, error: str) -> ChangeSet:
    changeset.state = ChangeSet.State.FAILED
    changeset.error = error
    changeset.save(update_fields=["state", "error", "results"])
    _session_state(changeset.session_id, RefactorSession.State.FAILED)
    _announce(changeset)
    return changeset


def _changed_since(store: GitStore, changeset: ChangeSet) -> set[str]:
    """Paths whose content differs between the parent proposal and this one."""
    if not changeset.parent or not changeset.parent.commit or not changeset.commit:
        return set()
    return {item.path for item in parse_diff(store.diff(changeset.parent.commit, changeset.commit))}


def _result_dict(result: Any) -> dict[str, Any]:
    return {
        "index": result.index,
        "path": result.path,
        "status": result.status,
        "how": result.how,
        "confidence": round(float(result.confidence), 3),
        "reason": result.reason,
        "start_line": result.start_line,
        "end_line": result.end_line,
    }


def _scan(store: GitStore, base: str, commit: str, diff: list[FileDiff]) -> list[Any]:
    if not diff:
        return []
    old_files = _tree_files(store, base)
    new_files = _tree_files(store, commit)

    def text(files: dict[str, tuple[str, str]], path: str) -> str | None:
        entry = files.get(path)
        if entry is None:
            return None
        blob = store.read_blob(entry[0], MAX_FILE_BYTES)
        return blob.data.decode("utf-8", errors="replace")

    changed = [
        ChangedFile(
            path=item.path,
            old_text=text(old_files, item.old_path),
            new_text=text(new_files, item.path) if item.status != "deleted" else None,
            old_mode=old_files.get(item.old_path, (None, None))[1],
            new_mode=new_files.get(item.path, (None, None))[1],
        )
        for item in diff
        if not item.binary
    ]
    try:
        # A background task: a large change on a busy machine may take minutes to scan.
        return scan_changes(changed, timeout_s=SCAN_TIMEOUT_S)
    except Exception:  # the scan must never lose a proposal; the gate sees the error
        logger.exception("Scanning failed")
        from qweb.lib.scan import Finding

        return [
            Finding(
                path="",
                line=0,
                tool="qweb",
                rule="scanner-error",
                severity="medium",
                message="The security scan failed; review the changes by hand.",
            )
        ]


@_git_failures_refused
def changeset_edit_file(
    *, membership: Membership, changeset: ChangeSet, path: str, content: str
) -> ChangeSet:
    """A reviewer's own version of one file: a new proposal with that file replaced."""
    ensure_can(membership, Action.CONTRIBUTE)
    _reviewable(changeset)
    try:
        path = clean_path(path)
    except UnsafePath as error:
        raise ValidationError({"path": str(error)}) from None
    if not in_scope(path, changeset.session.scope):
        raise ValidationError({"path": "That file is outside the refactor's scope."})
    # Only a file of the proposal: a folder's path would replace the folder with one file,
    # a path under a file the file with a folder.
    store = GitStore(changeset.session.repository.store_path)
    entry = _tree_files(store, changeset.commit or changeset.session.base_commit).get(path)
    if entry is None or entry[1] in FORBIDDEN_MODES:
        raise ValidationError({"path": "No such file in this proposal."})
    if _read_text(store, changeset.commit or changeset.session.base_commit, path) is None:
        raise ValidationError({"path": "Binary files cannot be edited here."})
    if not isinstance(content, str) or len(content.encode()) > MAX_FILE_BYTES:
        raise ValidationError({"content": "The new content must be text of at most 2 MB."})
    with transaction.atomic():
        locked = _lock_session(changeset.session)
        edited = ChangeSet.objects.create(
            session=locked,
            number=_next_number(locked),
            kind=ChangeSet.Kind.MANUAL,
            parent=changeset,
            answer=f"{path}\n```\n<<<<<<< SEARCH\n=======\n>>>>>>> REPLACE\n```",
            state=ChangeSet.State.BUILDING,
            created_by_id=membership.user_id,
        )
        store = GitStore(locked.repository.store_path)
        commit = store.commit_changes(
            parent=changeset.commit or locked.base_commit,
            changes={path: content.encode("utf-8")},
            ref=edited.ref,
            author_name="qweb",
            author_email="qweb@localhost",
            message=f"Proposal {edited.number}: {path} edited by hand",
        )
        edited.answer = ""
        edited.results = [
            {
                "index": 0,
                "path": path,
                "status": "applied",
                "how": "manual",
                "confidence": 1.0,
                "reason": "Edited by hand.",
                "start_line": None,
                "end_line": None,
            }
        ]
        edited.save(update_fields=["answer", "results"])
    return _finish_manual(edited, commit)


def _finish_manual(edited: ChangeSet, commit: str) -> ChangeSet:
    session = edited.session
    store = GitStore(session.repository.store_path)
    diff = parse_diff(store.diff(session.base_commit, commit))
    edited.commit = commit
    edited.files = [item.summary() for item in diff]
    edited.findings = [
        finding.as_dict() for finding in _scan(store, session.base_commit, commit, diff)
    ]
    edited.blocks_applied = 1
    edited.state = ChangeSet.State.READY
    edited.save()
    changed = _changed_since(store, edited)
    for decision in HunkDecision.objects.filter(changeset_id=edited.parent_id).exclude(
        path__in=changed
    ):
        HunkDecision.objects.create(
            changeset=edited,
            path=decision.path,
            hunk=decision.hunk,
            verdict=decision.verdict,
            decided_by_id=decision.decided_by_id,
        )
    _announce(edited)
    return edited


# ---------------------------------------------------------------------------- review


def file_diff(changeset: ChangeSet, path: str, context_lines: int = 3) -> FileDiff | None:
    """git's diff of one file of the proposal against the session's base."""
    if not changeset.commit:
        return None
    summary = next((item for item in changeset.files if item["path"] == path), None)
    if summary is None:
        return None
    store = GitStore(changeset.session.repository.store_path)
    paths = [path] if summary["old_path"] == path else [summary["old_path"], path]
    found = parse_diff(
        store.diff(
            changeset.session.base_commit,
            changeset.commit,
            paths=paths,
            context_lines=context_lines,
        )
    )
    return next((item for item in found if item.path == path), None)


def _reviewable(changeset: ChangeSet) -> None:
    if changeset.state == ChangeSet.State.NO_EDITS:
        raise ValidationError(
            f"{NO_EDITS_MESSAGE} There is nothing to review or apply: regenerate the proposal."
        )
    if changeset.state != ChangeSet.State.READY:
        raise ValidationError("This proposal is not ready for review.")
    if latest_changeset(changeset.session).pk != changeset.pk:
        raise ValidationError("A newer proposal replaced this one; review that one instead.")


@_git_failures_refused
def decision_set(
    *, membership: Membership, changeset: ChangeSet, path: str, hunk: Any, verdict: str
) -> HunkDecision | None:
    """Accept or reject one hunk (or, with ``hunk`` -1, the whole file); "clear" undoes it."""
    ensure_can(membership, Action.CONTRIBUTE)
    _reviewable(changeset)
    summary = next((item for item in changeset.files if item["path"] == path), None)
    if summary is None:
        raise ValidationError({"path": "No such file in this proposal."})
    if (
        not isinstance(hunk, int)
        or isinstance(hunk, bool)
        or not (hunk == WHOLE_FILE or 0 <= hunk < summary["hunks"])
    ):
        raise ValidationError({"hunk": "No such hunk in this file."})
    if verdict not in {"accept", "reject", "clear"}:
        raise ValidationError({"verdict": "Accept, reject or clear."})
    with transaction.atomic():
        if hunk == WHOLE_FILE:
            # A verdict on the whole file replaces the verdicts on its hunks.
            HunkDecision.objects.filter(changeset=changeset, path=path).delete()
        else:
            HunkDecision.objects.filter(changeset=changeset, path=path, hunk=WHOLE_FILE).delete()
        decision = None
        if verdict == "clear":
            HunkDecision.objects.filter(changeset=changeset, path=path, hunk=hunk).delete()
        else:
            decision, _ = HunkDecision.objects.update_or_create(
                changeset=changeset,
                path=path,
                hunk=hunk,
                defaults={
                    "verdict": verdict,
                    "decided_by_id": membership.user_id,
                    "decided_at": timezone.now(),
                },
            )
        broadcast(
            session_group(changeset.session_id),
            DecisionChanged(
                type="decision.changed",
                session_id=changeset.session_id,
                changeset_id=changeset.pk,
                path=path,
                hunk=hunk,
                verdict=verdict,
                by=membership.user.display_name,
            ),
        )
    return decision


@_git_failures_refused
def decisions_all(*, membership: Membership, changeset: ChangeSet, verdict: str) -> int:
    """Accept or reject every file of the proposal at once."""
    ensure_can(membership, Action.CONTRIBUTE)
    _reviewable(changeset)
    if verdict not in {"accept", "reject"}:
        raise ValidationError({"verdict": "Accept or reject."})
    with transaction.atomic():
        HunkDecision.objects.filter(changeset=changeset).delete()
        HunkDecision.objects.bulk_create(
            HunkDecision(
                changeset=changeset,
                path=item["path"],
                hunk=WHOLE_FILE,
                verdict=verdict,
                decided_by_id=membership.user_id,
            )
            for item in changeset.files
        )
        broadcast(
            session_group(changeset.session_id),
            DecisionChanged(
                type="decision.changed",
                session_id=changeset.session_id,
                changeset_id=changeset.pk,
                path="",
                hunk=WHOLE_FILE,
                verdict=verdict,
                by=membership.user.display_name,
            ),
        )
    return len(changeset.files)


@_git_failures_refused
def comment_add(
    *, membership: Membership, changeset: ChangeSet, path: str, line: Any, side: str, body: Any
) -> ReviewComment:
    """Comment on a line of the proposal's diff; everyone on the page sees it at once."""
    ensure_can(membership, Action.CONTRIBUTE)
    if changeset.state != ChangeSet.State.READY:
        raise ValidationError("This proposal is not ready for review.")
    if not any(item["path"] == path for item in changeset.files):
        raise ValidationError({"path": "No such file in this proposal."})
    # The column holds at most 2**31 - 1; a bigger number from a form or frame is no line.
    if (
        not isinstance(line, int)
        or isinstance(line, bool)
        or not 1 <= line < 2**31
        or side not in {"old", "new"}
    ):
        raise ValidationError({"line": "Comment on a line of the diff."})
    if not isinstance(body, str) or not body.strip():
        raise ValidationError({"body": "Write a comment first."})
    if len(body) > 10_000:
        raise ValidationError({"body": "Comments are limited to 10,000 characters."})
    comment = ReviewComment.objects.create(
        changeset=changeset,
        path=path,
        line=line,
        side=side,
        body=body.strip(),
        author_id=membership.user_id,
    )
    broadcast(
        session_group(changeset.session_id),
        CommentAdded(
            type="comment.added",
            session_id=changeset.session_id,
            changeset_id=changeset.pk,
            comment_id=comment.pk,
            path=path,
            line=line,
            side=side,
        ),
    )
    return comment


def accepted_hunks(changeset: ChangeSet) -> dict[str, list[int] | None]:
    """Per file, the accepted hunks (None: the whole file); files with nothing accepted left out."""
    decisions: dict[str, dict[int, str]] = {}
    for path, hunk, verdict in changeset.decisions.values_list("path", "hunk", "verdict"):
        decisions.setdefault(path, {})[hunk] = verdict
    accepted: dict[str, list[int] | None] = {}
    for item in changeset.files:
        verdicts = decisions.get(item["path"], {})
        if verdicts.get(WHOLE_FILE) == "accept":
            accepted[item["path"]] = None
        elif verdicts.get(WHOLE_FILE) is None:
            hunks = sorted(h for h, v in verdicts.items() if v == "accept" and h != WHOLE_FILE)
            per_hunk = item["status"] == "modified" and not item["binary"]
            if hunks:
                whole = not per_hunk or len(hunks) == item["hunks"]
                accepted[item["path"]] = None if whole else hunks
    return accepted


@dataclass(frozen=True)
class HeldFinding:
    """A high-severity finding and the hunk of the proposal's diff that holds it."""

    finding: dict[str, Any]
    hunk: Hunk | None  # None: the file as a whole (path "": the whole change)

    @property
    def path(self) -> str:
        return str(self.finding["path"])

    @property
    def where(self) -> str:
        """Where a reviewer finds it: "hunk 2 of app/views.py, lines 40–52"."""
        if not self.path:
            return "the change as a whole"
        if self.hunk is None:
            return f"every hunk of {self.path}"
        first, last = self.hunk.new_start, self.hunk.new_start + self.hunk.new_length - 1
        lines = f"line {first}" if first == last else f"lines {first}–{last}"
        return f"hunk {self.hunk.index + 1} of {self.path}, {lines}"

    def applied_with(self, accepted: dict[str, list[int] | None]) -> bool:
        """Whether applying these accepted hunks (``accepted_hunks``) applies the finding."""
        if not self.path:
            return bool(accepted)
        if self.path not in accepted:
            return False
        kept = accepted[self.path]
        return kept is None or self.hunk is None or self.hunk.index in kept

    def __str__(self) -> str:
        finding = self.finding
        line = f"at line {finding['line']}" if finding["line"] else "on the whole file"
        return f"{self.where}: {finding['tool']} {finding['rule']} {line}"


def hunk_holding(diff: FileDiff | None, line: int) -> Hunk | None:
    """The hunk whose new-side lines hold ``line``; None for line 0 or outside every hunk."""
    if diff is None or line <= 0:
        return None
    return next(
        (hunk for hunk in diff.hunks if hunk.new_start <= line < hunk.new_start + hunk.new_length),
        None,
    )


def high_findings_held(changeset: ChangeSet) -> list[HeldFinding]:
    """The proposal's high-severity findings, each with the hunk that holds it.

    The scan reads only the proposed side, so every finding is on a new-side line (removed
    lines hold no new code) and belongs to the hunk whose new lines hold it, in git's diff
    with the context the reviewers' verdicts refer to. A finding about the whole file (line
    0: a symlink, a submodule, a mode or path rule) belongs to every hunk of the file, since
    any accepted hunk carries the file's header; so does one on a line outside every hunk.
    """
    high = [finding for finding in changeset.findings if finding["severity"] == "high"]
    diffs = {
        path: file_diff(changeset, path)
        for path in sorted({finding["path"] for finding in high if finding["path"]})
    }
    return [
        HeldFinding(finding=finding, hunk=hunk_holding(diffs.get(finding["path"]), finding["line"]))
        for finding in high
    ]


def _blocked_message(blocking: list[HeldFinding]) -> str:
    one = len(blocking) == 1
    listed = "; ".join(str(held) for held in blocking[:5])
    if len(blocking) > 5:
        listed += f"; and {len(blocking) - 5} more"
    return (
        f"{len(blocking)} high-severity finding{'' if one else 's'} in the accepted changes, "
        f"which this workspace blocks: {listed}. Reject the hunk{'' if one else 's'} (or "
        f"file{'' if one else 's'}) that hold{'s it' if one else ' them'} to apply the rest."
    )


# ---------------------------------------------------------------------------- apply


def policy_for(workspace_id: int) -> RefactorPolicy:
    """The workspace's policy; the defaults (unsaved) until an admin saves one."""
    return RefactorPolicy.objects.filter(workspace_id=workspace_id).first() or RefactorPolicy(
        workspace_id=workspace_id
    )


def policy_update(
    *,
    membership: Membership,
    block_on_high_findings: bool,
    allow_mode_changes: bool,
    allow_push: bool = False,
) -> RefactorPolicy:
    """Admins choose what applying allows in their workspace."""
    ensure_can(membership, Action.MANAGE_MEMBERS)
    policy = policy_for(membership.workspace_id)
    policy.block_on_high_findings = bool(block_on_high_findings)
    policy.allow_mode_changes = bool(allow_mode_changes)
    policy.allow_push = bool(allow_push)
    policy.updated_by_id = membership.user_id
    policy.updated_at = timezone.now()
    policy.save()
    return policy


def _accepted_patch(
    store: GitStore, changeset: ChangeSet, accepted: dict[str, list[int] | None]
) -> tuple[str, list[FileDiff]]:
    session = changeset.session
    paths: list[str] = []
    for item in changeset.files:
        if item["path"] in accepted:
            paths.extend({item["path"], item["old_path"]})
    diff = parse_diff(store.diff(session.base_commit, changeset.commit, paths=sorted(set(paths))))
    patches = []
    chosen = []
    for item in diff:
        if item.path not in accepted:
            continue
        chosen.append(item)
        patches.append(item.patch(accepted[item.path]))
    return "".join(patches), chosen


def _check_modes(files: list[FileDiff], policy: RefactorPolicy) -> None:
    for item in files:
        header = item.header
        for mode, what in FORBIDDEN_MODES.items():
            if f"new file mode {mode}" in header or f"new mode {mode}" in header:
                raise ValidationError(f"{item.path} would become {what}; qweb never applies that.")
        if ("old mode" in header or "new mode" in header) and not policy.allow_mode_changes:
            raise ValidationError(
                f"{item.path} changes its file mode; an admin must allow mode changes first."
            )
        for path in dict.fromkeys((item.old_path, item.path)):
            reason = path_refusal(path)
            if reason:
                raise ValidationError(f"{path} {reason}; qweb never writes there.")


@_git_failures_refused
def changeset_apply(
    *, membership: Membership, changeset: ChangeSet, target: str = "branch"
) -> Apply:
    """Commit the accepted hunks on ``qweb/refactor-<id>`` (``target="branch"``) or the base.

    A 3-way merge by git when the branch moved since the base commit; on conflicts an
    ``Apply`` in state ``conflict`` lists the files and no ref moves. Applying the same
    accepted hunks to the same target again returns the first result (a double click applies
    once).
    """
    ensure_can(membership, Action.APPLY_CHANGES)
    if target not in {"branch", "base"}:
        raise ValidationError({"target": "Apply to a new branch or to the base branch."})
    with transaction.atomic():
        locked = (
            ChangeSet.objects.select_for_update()
            .select_related("session__repository")
            .get(pk=changeset.pk)
        )
        _reviewable(locked)
        session = locked.session
        if session.workspace_id != membership.workspace_id:
            raise PermissionDenied("This proposal belongs to another workspace.")
        accepted = accepted_hunks(locked)
        if not accepted:
            raise ValidationError("Accept at least one change before applying.")
        branch = session.branch_name if target == "branch" else session.base_branch
        fingerprint = hashlib.sha256(
            repr((locked.commit, branch, sorted((p, h) for p, h in accepted.items()))).encode()
        ).hexdigest()
        done = locked.applies.filter(state=Apply.State.APPLIED, fingerprint=fingerprint).first()
        if done is not None:
            return done
        policy = policy_for(session.workspace_id)
        # Reviewers judge hunks, so a finding blocks only when its hunk is accepted.
        blocking = [
            held
            for held in (high_findings_held(locked) if policy.block_on_high_findings else [])
            if held.applied_with(accepted)
        ]
        if blocking:
            return Apply.objects.create(
                changeset=locked,
                applied_by_id=membership.user_id,
                target_branch=branch,
                base_commit=session.base_commit,
                fingerprint=fingerprint,
                state=Apply.State.BLOCKED,
                message=_blocked_message(blocking),
            )
        store = GitStore(session.repository.store_path)
        patch, files = _accepted_patch(store, locked, accepted)
        _check_modes(files, policy)
        try:
            tree = store.apply_patch(session.base_commit, patch.encode("utf-8"))
        except GitStoreError as error:
            raise ValidationError(str(error)) from None
        user = membership.user
        message = _commit_message(session, locked, user)
        author = git_identity(user.name, user.email)
        identity = {"author_name": author.name, "author_email": author.email}
        applied = store.commit_tree(
            tree, parents=[session.base_commit], message=message, **identity
        )
        head = store.resolve_optional(f"refs/heads/{branch}")
        result = applied
        if head is not None and head != session.base_commit:
            merged, conflicts = store.merge(head, applied)
            if merged is None:
                return Apply.objects.create(
                    changeset=locked,
                    applied_by_id=membership.user_id,
                    target_branch=branch,
                    base_commit=session.base_commit,
                    branch_head=head,
                    fingerprint=fingerprint,
                    state=Apply.State.CONFLICT,
                    conflicts=conflicts,
                    message=f"{branch} moved since the base commit and "
                    f"{len(conflicts)} file{'s' if len(conflicts) != 1 else ''} conflict.",
                )
            result = store.commit_tree(merged, parents=[head], message=message, **identity)
        if not store.update_ref(f"refs/heads/{branch}", result, head):
            raise ValidationError(f"{branch} moved while applying; apply again.")
        record = Apply.objects.create(
            changeset=locked,
            applied_by_id=membership.user_id,
            target_branch=branch,
            base_commit=session.base_commit,
            branch_head=head or "",
            result_commit=result,
            patch_sha256=hashlib.sha256(store.format_patch(result)).hexdigest(),
            fingerprint=fingerprint,
            state=Apply.State.APPLIED,
            message=message,
        )
        _session_state(session.pk, RefactorSession.State.APPLIED)
        repository = session.repository
        if branch == repository.default_branch:
            from apps.repos.services import repository_head_moved

            repository_head_moved(repository=repository, sha=result)
        broadcast(
            session_group(session.pk),
            ApplyFinished(
                type="apply.finished",
                session_id=session.pk,
                changeset_id=locked.pk,
                apply_id=record.pk,
                state=record.state,
                branch=branch,
                commit=result,
            ),
        )
    return record


def apply_push_enqueue(*, membership: Membership, record: Apply) -> None:
    """Queue the push of an applied branch to the cloned repository's origin."""
    ensure_can(membership, Action.APPLY_CHANGES)
    session = record.changeset.session
    if session.workspace_id != membership.workspace_id:
        raise PermissionDenied("This apply belongs to another workspace.")
    if record.state != Apply.State.APPLIED:
        raise ValidationError("Only an applied change can be pushed.")
    if session.repository.source != "clone":
        raise ValidationError("This repository was uploaded: there is no remote to push to.")
    if not policy_for(session.workspace_id).allow_push:
        raise ValidationError("An admin must allow pushing in the refactor policy first.")
    task_enqueue(
        kind="refactor.push",
        payload={"apply_id": record.pk},
        workspace_id=session.workspace_id,
        created_by_id=membership.user_id,
    )


def apply_push(*, apply_id: int) -> Apply:
    """Push an applied branch (the task's work); the outcome is stored on the apply."""
    from apps.ops.services import TaskError
    from apps.repos.services import repository_push

    record = Apply.objects.select_related("changeset__session__repository").get(pk=apply_id)
    try:
        repository_push(
            repository=record.changeset.session.repository,
            commit=record.result_commit,
            branch=record.target_branch,
        )
    except TaskError as error:
        record.push_error = str(error)
        record.save(update_fields=["push_error"])
        raise
    record.pushed_at = timezone.now()
    record.push_error = ""
    record.save(update_fields=["pushed_at", "push_error"])
    return record


def _commit_message(session: RefactorSession, changeset: ChangeSet, user: Any) -> str:
    from django.urls import reverse

    link = reverse("refactors:detail", args=[session.workspace.slug, session.pk])
    site = settings.SITE_URL or ""
    return (
        f"{session.title}\n\n{session.instruction}\n\n"
        f"Proposed by the model in qweb refactor session {session.pk} (proposal "
        f"{changeset.number}), reviewed and applied by {user.display_name or user.email}.\n"
        f"{site}{link}\n"
    )
