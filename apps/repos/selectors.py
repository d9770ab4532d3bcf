"""Reads for repositories."""

from __future__ import annotations

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404

from apps.ops.models import Task
from apps.repos.models import IndexedCommit, Repository
from apps.workspaces.models import Workspace

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
