"""A proposal built: its edits applied to the base in memory, committed, diffed and scanned.

Also a reviewer's hand edit of one file, which becomes the session's next proposal.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.refactors.models import (
    ChangeSet,
    HunkDecision,
    RefactorSession,
)
from apps.refactors.selectors import MAX_FILE_BYTES, file_text
from apps.refactors.services.common import (
    FORBIDDEN_MODES,
    NO_EDITS_MESSAGE,
    _announce,
    _git_failures_refused,
    _lock_session,
    _next_number,
    _reviewable,
    _session_state,
    _tree_files,
    in_scope,
)
from apps.repos.models import Repository
from apps.workspaces.models import Membership
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.lib.diffs import FileDiff, diff_files, parse_diff
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
from qweb.lib.gitstore import GitStore, GitStoreError
from qweb.lib.scan import ChangedFile, Finding, scan_changes

logger = logging.getLogger(__name__)

SCAN_TIMEOUT_S = 300.0


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
    *, membership: Membership, changeset: ChangeSet, path: str, content: str, why: str = ""
) -> ChangeSet:
    """A reviewer's own version of one file: a new proposal with that file replaced.

    ``why`` says where the version came from (an accepted suggestion); default: by hand.
    """
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
    if file_text(store, changeset.commit or changeset.session.base_commit, path) is None:
        raise ValidationError({"path": "Binary files cannot be edited here."})
    if len(content.encode()) > MAX_FILE_BYTES:
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
            message=f"Proposal {edited.number}: {path} {why or 'edited by hand'}",
        )
        edited.answer = ""
        edited.results = [
            {
                "index": 0,
                "path": path,
                "status": "applied",
                "how": "manual",
                "confidence": 1.0,
                "reason": f"{(why or 'edited by hand').capitalize()}.",
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
            decided_at=decision.decided_at,
        )
    _announce(edited)
    return edited
