"""Reads for repositories."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404

from apps.ops.models import Task
from apps.repos.models import IndexedCommit, Repository
from apps.workspaces.models import Workspace
from qweb.lib.diffs import FileDiff, parse_diff
from qweb.lib.diffview import diff_rows, highlighted_lines
from qweb.lib.gitstore import EMPTY_TREE, GitStore, GitStoreError, RefInfo, RefPath, is_binary

REPO_TASK_KINDS = ("repo.import", "repo.clone", "repo.sync")


def repository_list(*, workspace: Workspace) -> QuerySet[Repository]:
    """The workspace's repositories, each with the index state of its head commit."""
    head_index = IndexedCommit.objects.filter(repository=OuterRef("pk"), sha=OuterRef("head_sha"))
    return workspace.repositories.annotate(
        index_state=Subquery(head_index.values("state")[:1]),
        index_files=Subquery(head_index.values("files_total")[:1]),
    ).order_by("name")


def repository_get(*, workspace: Workspace, slug: str) -> Repository:
    """A repository of ``workspace``; 404 for any other (nothing is confirmed to exist)."""
    repository = workspace.repositories.filter(slug=slug).first()
    if repository is None:
        raise Http404("No such repository.")
    return repository


def repository_task_get(*, workspace: Workspace, task_id: int) -> Task:
    task = Task.objects.filter(pk=task_id, workspace=workspace, kind__in=REPO_TASK_KINDS).first()
    if task is None:
        raise Http404("No such import.")
    return task


def repository_tasks_recent(*, workspace: Workspace, limit: int = 5) -> QuerySet[Task]:
    return Task.objects.filter(workspace=workspace, kind__in=REPO_TASK_KINDS).order_by(
        "-created_at"
    )[:limit]


# --- browsing: refs, paths and diffs, read from the repository's store ---------------------

MAX_DIFF_BYTES = 8 * 1024 * 1024
# Past this many diff lines the remaining files are listed, not rendered (GitHub does the same).
MAX_SHOWN_DIFF_LINES = 20_000
MAX_HIGHLIGHT_BLOB_BYTES = 1024 * 1024


@dataclass
class FileDiffView:
    """One file of a diff as the viewer shows it: git's diff and its rows (unless left out)."""

    diff: FileDiff
    hunks: list[dict[str, Any]]
    shown: bool
    anchor: str


@dataclass
class DiffView:
    """The files of a diff between two commits, with totals; ``too_large`` when git's diff
    was over the byte limit and nothing could be parsed."""

    files: list[FileDiffView] = field(default_factory=list)
    too_large: bool = False

    @property
    def added(self) -> int:
        return sum(item.diff.added for item in self.files)

    @property
    def removed(self) -> int:
        return sum(item.diff.removed for item in self.files)

    @property
    def hidden(self) -> int:
        return sum(not item.shown for item in self.files)


def repository_refs(*, repository: Repository) -> list[RefInfo]:
    """The repository's branches (newest first), then its tags."""
    return GitStore(repository.store_path).refs()


def ref_path_find(*, repository: Repository, refs: list[RefInfo], rest: str) -> RefPath:
    """What a URL's ``<ref>/<path>`` names (the default branch when empty); 404 otherwise."""
    store = GitStore(repository.store_path)
    if not rest.strip("/"):
        head = next(
            (ref for ref in refs if ref.kind == "branch" and ref.name == repository.default_branch),
            None,
        )
        if head is None:
            raise Http404("No such branch or commit.")
        return RefPath(head.name, head.kind, head.sha, "")
    try:
        found = store.split_ref_path(rest, refs)
    except GitStoreError:
        found = None
    if found is None:
        raise Http404("No such branch or commit.")
    return found


def diff_view(*, repository: Repository, base: str, head: str, context_lines: int = 3) -> DiffView:
    """git's diff from ``base`` to ``head`` (commits, or ``EMPTY_TREE``), ready for the viewer.

    Both sides' texts come from one ``cat-file`` batch and are highlighted whole; files past
    ``MAX_SHOWN_DIFF_LINES`` are listed without their hunks.
    """
    store = GitStore(repository.store_path)
    try:
        text = store.diff(base, head, context_lines=context_lines, max_bytes=MAX_DIFF_BYTES)
    except GitStoreError as error:
        if "too large" in error.message:
            return DiffView(too_large=True)
        raise
    files = parse_diff(text)
    budget = MAX_SHOWN_DIFF_LINES
    shown = []
    for item in files:
        size = sum(len(hunk.lines) for hunk in item.hunks)
        shown.append(budget - size >= 0 or not shown)
        budget -= size
    old = _texts(store, base, [f.old_path for f, ok in zip(files, shown, strict=True) if ok])
    new = _texts(store, head, [f.path for f, ok in zip(files, shown, strict=True) if ok])
    views = []
    for number, (item, ok) in enumerate(zip(files, shown, strict=True), start=1):
        hunks = []
        if ok:
            hunks = diff_rows(
                item,
                highlighted_lines(
                    item.old_path, None if item.status == "added" else old.get(item.old_path)
                ),
                highlighted_lines(
                    item.path, None if item.status == "deleted" else new.get(item.path)
                ),
            )
        views.append(FileDiffView(diff=item, hunks=hunks, shown=ok, anchor=f"diff-{number}"))
    return DiffView(files=views)


def _texts(store: GitStore, commit: str, paths: list[str]) -> dict[str, str]:
    """The text files among ``paths`` in ``commit`` (binary and very large ones left out)."""
    if commit == EMPTY_TREE or not paths:
        return {}
    wanted = set(paths)
    shas = {
        item.sha: item.path
        for item in store.ls_tree(commit, recursive=True)
        if item.path in wanted
        and item.type == "blob"
        and item.mode != "120000"
        and (item.size or 0) <= MAX_HIGHLIGHT_BLOB_BYTES
    }
    texts = {}
    for sha, data in store.iter_blobs(list(shas)):
        if not is_binary(data):
            texts[shas[sha]] = data.decode("utf-8", "replace")
    return texts


def refactor_branches(*, repository: Repository) -> dict[str, Any]:
    """``qweb/refactor-<id>`` branch names → the refactor session that made them."""
    from apps.refactors.models import RefactorSession  # refactors builds on repos

    return {
        session.branch_name: session
        for session in RefactorSession.objects.filter(repository=repository).only(
            "pk", "title", "repository_id"
        )
    }
