from __future__ import annotations

import copy
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.repos.conftest import make_zip
from tests.sockets import sockets  # noqa: F401 - a fixture for the consumer tests

# A small real-looking project: two modules far enough apart that a change to each end of
# a file gives separate hunks.
PROJECT = {
    "shop/billing/__init__.py": "",
    "shop/billing/money.py": (
        '"""Money helpers."""\n\nfrom decimal import Decimal\n\n\n'
        "def total_with_tax(amount, rate):\n"
        '    """The amount with tax added."""\n'
        "    return amount * (1 + rate)\n"
        + "".join(f"\n\ndef helper_{i}(value):\n    return value + {i}\n" for i in range(8))
        + "\n\ndef rounded(amount):\n    return amount.quantize(Decimal('0.01'))\n"
    ),
    "shop/billing/views.py": (
        "from billing.money import rounded, total_with_tax\n\n\n"
        "def invoice_total(request, amount):\n"
        "    return rounded(total_with_tax(amount, 0.2))\n"
    ),
    "shop/billing/checks.py": "".join(
        f"def check_{name}(value):\n    if value is None:\n"
        '        raise ValueError("missing")\n    return value\n\n\n'
        for name in ("a", "b")
    ),
    "shop/README.md": "# Shop\n\nBilling helpers.\n",
    "shop/static/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
}

# What every refactor test runs under (besides its own data folder and the tiny model).
REFACTOR_SETTINGS = {
    "QWEB_CONTEXT_TOKENS": 0,
    "QWEB_CONTEXT_WINDOW": 0,
    "QWEB_REFACTOR_ANSWER_TOKENS": 256,
    "QWEB_CHAT_RATE_COUNT": 1000,
}
DEFAULT_INSTRUCTION = "Rename total_with_tax to total_including_tax"


@pytest.fixture(autouse=True)
def refactor_settings(settings, tmp_path, tiny_model_dir):
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    settings.QWEB_MODEL_DIR = tiny_model_dir
    for name, value in REFACTOR_SETTINGS.items():
        setattr(settings, name, value)
    return settings


def project_import(*, workspace, owner, scratch: Path):
    """``PROJECT`` imported through the real services and indexed."""
    from apps.repos import services
    from apps.repos.indexing import index_commit

    archive = scratch / "shop.zip"
    make_zip(PROJECT, archive)
    repository = services.repository_import_archive(
        workspace=workspace, user=owner, name="Shop", archive_path=archive, filename="shop.zip"
    )
    index_commit(repository=repository, sha=repository.head_sha)
    return repository


@pytest.fixture
def project(workspace, owner, tmp_path):
    return project_import(workspace=workspace, owner=owner, scratch=tmp_path)


@pytest.fixture
def membership_of(workspace):
    from apps.workspaces.models import Membership

    return lambda user: Membership.objects.get(workspace=workspace, user=user)


def proposal_finish(changeset, answer):
    """'The model' answers ``changeset``'s job with ``answer``: the real hook and build run."""
    from apps.generation.models import GenerationJob
    from apps.refactors import services

    job = changeset.job
    GenerationJob.objects.filter(pk=job.pk).update(
        state=GenerationJob.State.DONE, text=answer, finish_reason="stop"
    )
    job.refresh_from_db()
    services.changeset_job_finished(job)
    return services.changeset_build(changeset_id=changeset.pk)


def proposal_write(*, membership, repository, answer, instruction=DEFAULT_INSTRUCTION, scope=None):
    """A session by ``membership`` whose first proposal the model answers with ``answer``."""
    from apps.refactors import services

    session = services.refactor_create(
        membership=membership, repository=repository, instruction=instruction, scope=scope
    )
    return proposal_finish(session.changesets.get(), answer)


def writing_start(*, membership, repository):
    """A session whose first proposal is queued: the model has not started writing it."""
    from apps.refactors import services

    session = services.refactor_create(
        membership=membership, repository=repository, instruction="Add docstrings"
    )
    return session.changesets.select_related("job").get()


@pytest.fixture
def propose(project, owner, membership_of):
    """Start a session and let 'the model' answer with ``answer``: the real build runs on it."""

    def run(answer, *, instruction=DEFAULT_INSTRUCTION, scope=None, user=owner):
        return proposal_write(
            membership=membership_of(user),
            repository=project,
            answer=answer,
            instruction=instruction,
            scope=scope,
        )

    run.finish = proposal_finish
    return run


# Snapshots: what a transactional test starts from, built once --------------------------------
#
# A websocket test needs committed rows (the consumer reads them on another thread), so each
# such test ends with every table emptied. Importing, indexing and building a proposal (two
# security scanners in subprocesses) cost far more than the test itself, so the consumer
# tests build their starting point once through the same services, take a snapshot of the
# rows and the data folder, and restore that copy before each test.


@dataclass(frozen=True)
class Started:
    """What a test starts from: the owner's workspace, the project and one proposal."""

    workspace: Any
    owner: Any
    repository: Any
    changeset: Any


@dataclass(frozen=True)
class Snapshot:
    """Every committed row (as serialized objects) and the data folder they refer to."""

    rows: list[dict[str, Any]]
    data_dir: Path
    ids: dict[str, int]

    def restore(self) -> Started:
        """Write the rows again and copy the folder into this test's data folder."""
        from django.apps import apps
        from django.conf import settings
        from django.core import serializers
        from django.core.management.color import no_style
        from django.db import connection, transaction

        from apps.accounts.models import User
        from apps.refactors.models import ChangeSet
        from apps.repos.models import Repository
        from apps.workspaces.models import Workspace

        shutil.copytree(self.data_dir, settings.DATA_DIR, dirs_exist_ok=True)
        by_model: dict[type, list[Any]] = {}
        relations = []
        # A copy: the rows' lists and dicts would otherwise be shared with the objects.
        for item in serializers.deserialize("python", copy.deepcopy(self.rows)):
            by_model.setdefault(type(item.object), []).append(item.object)
            relations += [
                (item.object, name, pks) for name, pks in (item.m2m_data or {}).items() if pks
            ]
        with transaction.atomic():
            for model, objects in by_model.items():
                model._base_manager.bulk_create(objects)
            for obj, name, pks in relations:
                getattr(obj, name).set(pks)
        # As loaddata does: the next row of each table gets a key above the restored ones.
        models = {apps.get_model(row["model"]) for row in self.rows}
        with connection.cursor() as cursor:
            for sql in connection.ops.sequence_reset_sql(no_style(), models):
                cursor.execute(sql)
        return Started(
            workspace=Workspace.objects.get(pk=self.ids["workspace"]),
            owner=User.objects.get(pk=self.ids["owner"]),
            repository=Repository.objects.get(pk=self.ids["repository"]),
            changeset=ChangeSet.objects.select_related("job").get(pk=self.ids["changeset"]),
        )


# Rows that every test has anyway, recreated after each flush by post_migrate.
_NOT_SNAPSHOTTED = {"contenttypes.contenttype", "auth.permission", "sessions.session"}


def _rows() -> list[dict[str, Any]]:
    from django.apps import apps
    from django.core import serializers

    # In any order: the restore writes them in one transaction, and foreign keys are
    # checked at its commit.
    rows: list[dict[str, Any]] = []
    for model in apps.get_models():
        if model._meta.label_lower not in _NOT_SNAPSHOTTED:
            rows += serializers.serialize("python", model._base_manager.order_by("pk"))
    return rows


def snapshot_take(
    build: Callable[..., Any], *, tmp_path_factory, django_db_blocker, tiny_model_dir
) -> Snapshot:
    """The rows and files that ``build(membership=, repository=)`` leaves, committed on an
    empty database by the owner of the project's workspace; the database is empty again after.
    """
    from django.core.management import call_command
    from django.test import override_settings

    from apps.workspaces.models import Membership
    from apps.workspaces.roles import Role
    from tests import factories

    scratch = tmp_path_factory.mktemp("snapshot")
    data_dir = scratch / "data"
    data_dir.mkdir()
    with (
        django_db_blocker.unblock(),
        override_settings(DATA_DIR=data_dir, QWEB_MODEL_DIR=tiny_model_dir, **REFACTOR_SETTINGS),
    ):
        # Built before any test's own rows: a snapshot holds only what ``build`` made.
        assert not _rows(), "a snapshot must start from an empty database"
        try:
            # The same rows as the workspace and owner fixtures make.
            workspace = factories.workspace_create(name="Acme", slug="acme")
            owner = factories.membership_create(workspace=workspace, role=Role.OWNER).user
            repository = project_import(workspace=workspace, owner=owner, scratch=scratch)
            membership = Membership.objects.get(workspace=workspace, user=owner)
            changeset = build(membership=membership, repository=repository)
            rows = _rows()
        finally:
            # What a transactional test's teardown does, sequences kept.
            call_command("flush", interactive=False, verbosity=0, reset_sequences=False)
    ids = {
        "workspace": workspace.pk,
        "owner": owner.pk,
        "repository": repository.pk,
        "changeset": changeset.pk,
    }
    return Snapshot(rows=rows, data_dir=data_dir, ids=ids)


@pytest.fixture(scope="session")
def writing_snapshot(django_db_setup, django_db_blocker, tmp_path_factory, tiny_model_dir):
    """The project and a session whose first proposal is queued, committed once."""
    return snapshot_take(
        writing_start,
        tmp_path_factory=tmp_path_factory,
        django_db_blocker=django_db_blocker,
        tiny_model_dir=tiny_model_dir,
    )
