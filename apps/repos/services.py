"""Writes for repositories: import an archive, clone, sync.

The slow part of each runs in a background task (``apps/repos/tasks.py``); the functions
here that a request calls only validate what can be checked at once and queue the task.
A refused import leaves no repository row, no git objects and no files behind.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import User
from apps.ops import files as task_files
from apps.ops.models import Task
from apps.ops.services import ProgressReporter, TaskError, no_progress, task_enqueue
from apps.repos.models import IndexedCommit, Repository, repositories_root
from apps.workspaces.models import Membership, Workspace
from apps.workspaces.permissions import ensure_can
from apps.workspaces.roles import Action
from qweb.crypto import decrypt_secret, encrypt_secret
from qweb.lib.archives import ArchiveError, ArchiveLimits, read_archive
from qweb.lib.gitident import GitIdentity, git_identity
from qweb.lib.gitstore import GitStore, GitStoreError, SshOptions
from qweb.lib.urlsafety import UnsafeUrlError, check_clone_url

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.xz", ".txz")
_MB = 1024 * 1024


def archive_limits() -> ArchiveLimits:
    return ArchiveLimits(
        max_archive_bytes=settings.QWEB_UPLOAD_MAX_MB * _MB,
        max_total_bytes=settings.QWEB_ARCHIVE_MAX_TOTAL_MB * _MB,
        max_files=settings.QWEB_ARCHIVE_MAX_FILES,
        max_file_bytes=settings.QWEB_ARCHIVE_MAX_FILE_MB * _MB,
        max_ratio=float(settings.QWEB_ARCHIVE_MAX_RATIO),
    )


def _clean_name(workspace: Workspace, name: str, repository: Repository | None) -> tuple[str, str]:
    """The display name and a slug free in this workspace (checked now, for a clear message)."""
    name = name.strip()
    if repository is not None:
        return repository.name, repository.slug
    if not name:
        raise ValidationError({"name": "Give the repository a name."})
    if len(name) > 100:
        raise ValidationError({"name": "Use at most 100 characters."})
    slug = slugify(name)[:50].strip("-")
    if not slug:
        raise ValidationError({"name": "Use at least one letter or digit in the name."})
    if Repository.objects.filter(workspace=workspace, slug=slug).exists():
        raise ValidationError({"name": f"This workspace already has a repository named {name!r}."})
    return name, slug


def archive_check_name(filename: str) -> None:
    if not filename.lower().endswith(ARCHIVE_SUFFIXES):
        raise ValidationError(
            {"archive": "Upload a .zip, .tar, .tar.gz, .tgz or .tar.xz archive of the project."}
        )


def repository_import_enqueue(
    *,
    actor: Membership,
    name: str,
    archive: IO[bytes],
    filename: str,
    size: int,
    repository: Repository | None = None,
) -> Task:
    """Check an uploaded archive's name and size, keep it on disk and queue its import."""
    ensure_can(actor, Action.CONTRIBUTE)
    name, slug = _clean_name(actor.workspace, name, repository)
    archive_check_name(filename)
    if size > settings.QWEB_UPLOAD_MAX_MB * _MB:
        raise ValidationError(
            {"archive": f"The archive is larger than the {settings.QWEB_UPLOAD_MAX_MB} MB limit."}
        )
    # Staged, then handed to the task: it lives in the task's folder and goes when the task
    # ends, whatever ends it (apps/ops/files.py).
    upload_path = task_files.staging_path(".upload")
    try:
        with upload_path.open("wb") as target:
            shutil.copyfileobj(archive, target, 1024 * 1024)
        with transaction.atomic():
            return task_enqueue(
                kind="repo.import",
                payload={
                    "workspace_id": actor.workspace_id,
                    "user_id": actor.user_id,
                    "name": name,
                    "slug": slug,
                    "filename": Path(filename).name,
                    "repository_id": repository.pk if repository else None,
                },
                inputs={"upload_path": upload_path},
                workspace_id=actor.workspace_id,
                created_by_id=actor.user_id,
                max_attempts=1,
            )
    except BaseException:
        upload_path.unlink(missing_ok=True)
        raise


def repository_import_archive(
    *,
    workspace: Workspace,
    user: User,
    name: str,
    archive_path: Path,
    filename: str,
    repository: Repository | None = None,
    progress: ProgressReporter = no_progress,
    scratch: Path | None = None,
) -> Repository:
    """Validate an archive and write it as the next commit of a (new) repository.

    Raises ``TaskError`` with the reason when the archive is refused; nothing is left behind.
    ``scratch`` is where the unpacked files and the new store are built (a task's attempt
    folder, so a crash's leftovers are known to be the task's); the system's temporary
    folder and the repositories folder otherwise.
    """
    name, slug = _clean_name_or_task_error(workspace, name, repository)
    progress(0.05, "Checking the archive", force=True)
    try:
        extracted = read_archive(
            archive_path, filename=filename, limits=archive_limits(), temp_dir=scratch
        )
    except ArchiveError as error:
        raise TaskError(error.message) from None
    with extracted:
        if not extracted.entries:
            raise TaskError("The archive holds no files.")
        progress(0.4, f"Writing {len(extracted.entries)} files to git", force=True)
        message = f"Upload {filename}"
        if repository is not None:
            return _commit_to_existing(repository, extracted.entries, user, message)
        return _create_from_entries(
            workspace, user, name, slug, extracted.entries, message, scratch
        )


def _clean_name_or_task_error(
    workspace: Workspace, name: str, repository: Repository | None
) -> tuple[str, str]:
    try:
        return _clean_name(workspace, name, repository)
    except ValidationError as error:
        raise TaskError(" ".join(error.messages)) from None


def _author(user: User) -> GitIdentity:
    return git_identity(user.name, user.email)


def _new_store_dir(scratch: Path | None) -> tuple[str, Path]:
    root = repositories_root()
    root.mkdir(parents=True, exist_ok=True)
    store_name = f"{uuid.uuid4().hex}.git"
    # Built under a temporary name and renamed into place only once complete.
    return store_name, (scratch or root) / f".incoming-{store_name}"


def _create_from_entries(
    workspace: Workspace,
    user: User,
    name: str,
    slug: str,
    entries: list[Any],
    message: str,
    scratch: Path | None,
) -> Repository:
    store_name, temp_path = _new_store_dir(scratch)
    try:
        store = GitStore.init(temp_path, "main")
        author_name, author_email = _author(user)
        sha = store.commit_entries(
            entries,
            branch="main",
            author_name=author_name,
            author_email=author_email,
            message=message,
        )
        return _register(
            workspace=workspace,
            user=user,
            name=name,
            slug=slug,
            store_name=store_name,
            temp_path=temp_path,
            source=Repository.Source.UPLOAD,
            branch="main",
            head_sha=sha,
        )
    except GitStoreError as error:
        raise TaskError(error.message if hasattr(error, "message") else str(error)) from None
    finally:
        shutil.rmtree(temp_path, ignore_errors=True)


def _register(
    *,
    workspace: Workspace,
    user: User,
    name: str,
    slug: str,
    store_name: str,
    temp_path: Path,
    source: str,
    branch: str,
    head_sha: str,
    clone_url: str = "",
    token: str | None = None,
) -> Repository:
    """Move a finished store into place and create its row, both or neither."""
    final_path = repositories_root() / store_name
    try:
        with transaction.atomic():
            repository = Repository.objects.create(
                workspace=workspace,
                name=name,
                slug=slug,
                source=source,
                clone_url=clone_url,
                clone_token_encrypted=encrypt_secret(token) if token else "",
                default_branch=branch,
                head_sha=head_sha,
                store_name=store_name,
                created_by=user,
                last_synced_at=timezone.now() if source == Repository.Source.CLONE else None,
            )
            temp_path.rename(final_path)
            index_enqueue(repository=repository, sha=head_sha)
    except IntegrityError:
        raise TaskError(f"This workspace already has a repository named {name!r}.") from None
    except BaseException:
        shutil.rmtree(final_path, ignore_errors=True)
        raise
    return repository


def _commit_to_existing(
    repository: Repository, entries: list[Any], user: User, message: str
) -> Repository:
    store = GitStore(repository.store_path)
    author_name, author_email = _author(user)
    try:
        sha = store.commit_entries(
            entries,
            branch=repository.default_branch,
            author_name=author_name,
            author_email=author_email,
            message=message,
        )
    except GitStoreError as error:
        raise TaskError(str(error)) from None
    repository_head_moved(repository=repository, sha=sha)
    return repository


def repository_head_moved(*, repository: Repository, sha: str) -> None:
    """Record a new head of the default branch (an upload, a sync, an applied refactor)."""
    with transaction.atomic():
        repository.head_sha = sha
        repository.updated_at = timezone.now()
        repository.save(update_fields=["head_sha", "updated_at"])
        index_enqueue(repository=repository, sha=sha)


def index_enqueue(*, repository: Repository, sha: str) -> Task | None:
    """Queue indexing of ``sha`` unless it is indexed or queued already."""
    indexed, created = IndexedCommit.objects.get_or_create(repository=repository, sha=sha)
    if not created and indexed.state in {IndexedCommit.State.READY, IndexedCommit.State.RUNNING}:
        return None
    return task_enqueue(
        kind="repo.index",
        payload={"repository_id": repository.pk, "sha": sha},
        workspace_id=repository.workspace_id,
    )


def repository_clone_enqueue(
    *, actor: Membership, name: str, url: str, branch: str = "", token: str = ""
) -> Task:
    """Check a clone URL now (scheme, host, address) and queue the clone."""
    ensure_can(actor, Action.CONTRIBUTE)
    name, slug = _clean_name(actor.workspace, name, None)
    url = url.strip()
    _check_url(url, field="url")
    return task_enqueue(
        kind="repo.clone",
        payload={
            "workspace_id": actor.workspace_id,
            "user_id": actor.user_id,
            "name": name,
            "slug": slug,
            "url": url,
            "branch": branch.strip() or None,
            # The token never sits in the database in clear, not even in the queue.
            "token": encrypt_secret(token) if token else "",
        },
        workspace_id=actor.workspace_id,
        created_by_id=actor.user_id,
        max_attempts=1,
    )


def _check_url(url: str, *, field: str | None = None) -> Any:
    schemes = list(settings.QWEB_CLONE_SCHEMES)
    if not (settings.QWEB_CLONE_SSH_KEY_FILE and settings.QWEB_CLONE_SSH_KNOWN_HOSTS_FILE):
        # ssh needs the admin's deploy key and pinned host keys (the settings insist).
        schemes = [scheme for scheme in schemes if scheme != "ssh"]
    try:
        return check_clone_url(
            url,
            allowed_schemes=schemes,
            allow_private=settings.QWEB_CLONE_ALLOW_PRIVATE,
        )
    except UnsafeUrlError as error:
        message = str(error)
        raise (ValidationError({field: message}) if field else TaskError(message)) from None


def _remote_options(checked: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "timeout_s": settings.QWEB_CLONE_TIMEOUT_S,
        "max_bytes": settings.QWEB_CLONE_MAX_MB * _MB,
        "pinned_resolve": checked.curl_resolve,
        # ssh runs only for an ssh URL, and then nothing else does.
        "allowed_protocols": tuple(s for s in settings.QWEB_CLONE_SCHEMES if s != "ssh"),
    }
    if checked.scheme == "ssh":
        options["allowed_protocols"] = ("ssh",)
        # The admin's deploy key and pinned host keys; ssh connects to the checked address
        # and verifies the host key under the name in the URL.
        options["ssh"] = SshOptions(
            key_file=settings.QWEB_CLONE_SSH_KEY_FILE,
            known_hosts_file=settings.QWEB_CLONE_SSH_KNOWN_HOSTS_FILE,
            host_key_alias=checked.ssh_host_key_alias,
            hostname=checked.address,
        )
    return options


def repository_clone(
    *,
    workspace: Workspace,
    user: User,
    name: str,
    url: str,
    branch: str | None = None,
    token: str | None = None,
    progress: ProgressReporter = no_progress,
    scratch: Path | None = None,
) -> Repository:
    """Clone ``url`` (shallow, one branch) into a new repository (built in ``scratch``)."""
    name, slug = _clean_name_or_task_error(workspace, name, None)
    # Resolved again here, and git connects to exactly the address that was checked.
    checked = _check_url(url)
    progress(0.1, "Cloning", force=True)
    store_name, temp_path = _new_store_dir(scratch)
    try:
        store = GitStore.clone(
            checked.url, temp_path, branch=branch, token=token or None, **_remote_options(checked)
        )
        head_branch = store.head_branch()
        sha = store.resolve(f"refs/heads/{head_branch}")
        return _register(
            workspace=workspace,
            user=user,
            name=name,
            slug=slug,
            store_name=store_name,
            temp_path=temp_path,
            source=Repository.Source.CLONE,
            branch=head_branch,
            head_sha=sha,
            clone_url=checked.url,
            token=token,
        )
    except GitStoreError as error:
        raise TaskError(str(error)) from None
    finally:
        shutil.rmtree(temp_path, ignore_errors=True)


def repository_sync(*, repository: Repository, progress: ProgressReporter = no_progress) -> str:
    """Fetch the newest commit of a cloned repository's branch; returns the new head."""
    if repository.source != Repository.Source.CLONE:
        raise TaskError("Only cloned repositories can be synced; upload a newer archive instead.")
    checked = _check_url(repository.clone_url)
    token = decrypt_secret(repository.clone_token_encrypted) if repository.has_token else None
    progress(0.1, "Fetching", force=True)
    try:
        sha = GitStore(repository.store_path).fetch(
            checked.url, branch=repository.default_branch, token=token, **_remote_options(checked)
        )
    except GitStoreError as error:
        raise TaskError(str(error)) from None
    with transaction.atomic():
        repository.last_synced_at = timezone.now()
        repository.save(update_fields=["last_synced_at"])
        repository_head_moved(repository=repository, sha=sha)
    return sha


def repository_push(*, repository: Repository, commit: str, branch: str) -> None:
    """Push ``commit`` to ``branch`` of a cloned repository's origin with its stored token."""
    if repository.source != Repository.Source.CLONE:
        raise TaskError("Only cloned repositories have a remote to push to.")
    checked = _check_url(repository.clone_url)
    token = decrypt_secret(repository.clone_token_encrypted) if repository.has_token else None
    try:
        GitStore(repository.store_path).push(
            checked.url, commit=commit, branch=branch, token=token, **_remote_options(checked)
        )
    except GitStoreError as error:
        raise TaskError(str(error)) from None


def repository_sync_enqueue(*, actor: Membership, repository: Repository) -> Task:
    """Queue a sync of a cloned repository."""
    ensure_can(actor, Action.CONTRIBUTE)
    if repository.workspace_id != actor.workspace_id:
        raise ValidationError("That repository belongs to another workspace.")
    if repository.source != Repository.Source.CLONE:
        raise ValidationError("Only cloned repositories can be synced; upload a newer archive.")
    return task_enqueue(
        kind="repo.sync",
        payload={"repository_id": repository.pk},
        workspace_id=actor.workspace_id,
        created_by_id=actor.user_id,
    )


def repository_delete(*, actor: Membership, repository: Repository) -> None:
    """Delete a repository and its git store (admins)."""
    ensure_can(actor, Action.MANAGE_MEMBERS)
    if repository.workspace_id != actor.workspace_id:
        raise ValidationError("That repository belongs to another workspace.")
    path = repository.store_path
    with transaction.atomic():
        repository.delete()
        transaction.on_commit(lambda: shutil.rmtree(path, ignore_errors=True))
