from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.workspaces.models import Workspace, slug_validator


class Repository(models.Model):
    """A repository in a workspace, stored as a bare git repository under the data directory.

    A row exists only for a repository whose first import or clone succeeded: a refused
    upload leaves its reason on the task, and nothing here or on disk.
    """

    class Source(models.TextChoices):
        UPLOAD = "upload", "Upload"
        CLONE = "clone", "Clone"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="repositories")
    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=50, validators=[slug_validator])
    description = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    clone_url = models.CharField(max_length=2000, blank=True)
    # The access token for private clones, encrypted with a key derived from the secret key.
    clone_token_encrypted = models.TextField(blank=True)
    default_branch = models.CharField(max_length=255, default="main")
    head_sha = models.CharField(max_length=40, blank=True)
    store_name = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "slug"], name="repos_repository_slug"),
        ]
        ordering = ["name"]
        verbose_name_plural = "repositories"

    def __str__(self) -> str:
        return self.name

    @property
    def store_path(self) -> Path:
        return repositories_root() / self.store_name

    @property
    def has_token(self) -> bool:
        return bool(self.clone_token_encrypted)


def repositories_root() -> Path:
    return Path(settings.DATA_DIR) / "repositories"


class IndexedBlob(models.Model):
    """What the index knows about one file content, keyed by its git blob sha.

    Content-addressed, so a blob parsed once is never parsed again, whichever commit or
    repository it appears in. Definitions and references are stored compactly as lists:
    definitions ``[name, kind, start_line, end_line, signature, parent]``, references
    ``[name, line]``.
    """

    sha = models.CharField(max_length=40, primary_key=True)
    language = models.CharField(max_length=32, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    lines = models.PositiveIntegerField(default=0)
    tokens = models.PositiveIntegerField(default=0)
    binary = models.BooleanField(default=False)
    vendored = models.BooleanField(default=False)
    generated = models.BooleanField(default=False)
    minified = models.BooleanField(default=False)
    parse_errors = models.BooleanField(default=False)
    definitions = models.JSONField(default=list)
    references = models.JSONField(default=list)
    # What the blob adds to a search index (chunks, token counts, definitions) as written by
    # ``FileMaterial.to_bytes``, so no blob is tokenized twice; null outside search, and for
    # rows written before it existed (filled in when a commit next needs them).
    search_material = models.BinaryField(null=True, editable=False)
    indexed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.sha


class IndexedCommit(models.Model):
    """The index of one commit of a repository: its files, and the state of indexing it."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Indexing"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    repository = models.ForeignKey(Repository, on_delete=models.CASCADE, related_name="indexes")
    sha = models.CharField(max_length=40)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    progress = models.FloatField(default=0.0)
    files_total = models.PositiveIntegerField(default=0)
    files_parsed = models.PositiveIntegerField(default=0)
    files_reused = models.PositiveIntegerField(default=0)
    files_ignored = models.PositiveIntegerField(default=0)
    tokens_total = models.PositiveBigIntegerField(default=0)
    # The commit's files as [path, blob sha, executable] rows, sorted by path: written once,
    # never changed, read whole (like a git tree, and far cheaper than a row per file).
    manifest = models.JSONField(default=list)
    django_project = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["repository", "sha"], name="repos_indexedcommit_sha"),
        ]

    def __str__(self) -> str:
        return f"{self.repository} @ {self.sha[:10]} ({self.state})"

    @property
    def search_dir(self) -> Path:
        return Path(settings.DATA_DIR) / "index" / str(self.repository_id) / self.sha
