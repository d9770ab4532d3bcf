"""Background task handlers for repositories: ids from the payload, load, call a service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apps.accounts.models import User
from apps.ops.models import Task
from apps.ops.runner import Progress, attempt_folder, register
from apps.repos import services
from apps.repos.indexing import index_commit
from apps.repos.models import IndexedCommit, Repository
from apps.workspaces.models import Workspace
from qweb.crypto import decrypt_secret


@register("repo.import")
def import_archive(task: Task, progress: Progress) -> dict[str, Any]:
    payload = task.payload
    # The upload is the task's input: it stays for the task's life and goes when it ends.
    repository = services.repository_import_archive(
        workspace=Workspace.objects.get(pk=payload["workspace_id"]),
        user=User.objects.get(pk=payload["user_id"]),
        name=payload["name"],
        archive_path=Path(payload["upload_path"]),
        filename=payload["filename"],
        repository=(
            Repository.objects.get(pk=payload["repository_id"])
            if payload.get("repository_id")
            else None
        ),
        progress=progress,
        scratch=attempt_folder(task),
    )
    return {"repository_id": repository.pk, "head_sha": repository.head_sha}


@register("repo.clone")
def clone(task: Task, progress: Progress) -> dict[str, Any]:
    payload = task.payload
    repository = services.repository_clone(
        workspace=Workspace.objects.get(pk=payload["workspace_id"]),
        user=User.objects.get(pk=payload["user_id"]),
        name=payload["name"],
        url=payload["url"],
        branch=payload.get("branch"),
        token=decrypt_secret(payload["token"]) if payload.get("token") else None,
        progress=progress,
        scratch=attempt_folder(task),
    )
    return {"repository_id": repository.pk, "head_sha": repository.head_sha}


@register("repo.sync")
def sync(task: Task, progress: Progress) -> dict[str, Any]:
    repository = Repository.objects.get(pk=task.payload["repository_id"])
    sha = services.repository_sync(repository=repository, progress=progress)
    return {"repository_id": repository.pk, "head_sha": sha}


@register("repo.index")
def index(task: Task, progress: Progress) -> dict[str, Any]:
    repository = Repository.objects.get(pk=task.payload["repository_id"])
    done = IndexedCommit.objects.filter(
        repository=repository, sha=task.payload["sha"], state=IndexedCommit.State.READY
    ).first()
    if done is not None:  # indexed meanwhile (by the import command, or an earlier task)
        return {"repository_id": repository.pk, "indexed_commit_id": done.pk, "skipped": True}
    try:
        indexed = index_commit(repository=repository, sha=task.payload["sha"], progress=progress)
    except BaseException as error:
        IndexedCommit.objects.filter(repository=repository, sha=task.payload["sha"]).update(
            state=IndexedCommit.State.FAILED, error=str(error)[:500]
        )
        raise
    return {
        "repository_id": repository.pk,
        "indexed_commit_id": indexed.pk,
        "files": indexed.files_total,
        "parsed": indexed.files_parsed,
    }
