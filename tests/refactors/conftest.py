from __future__ import annotations

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


@pytest.fixture(autouse=True)
def refactor_settings(settings, tmp_path, tiny_model_dir):
    settings.DATA_DIR = tmp_path / "data"
    settings.DATA_DIR.mkdir()
    settings.QWEB_MODEL_DIR = tiny_model_dir
    settings.QWEB_CONTEXT_TOKENS = 0
    settings.QWEB_CONTEXT_WINDOW = 0
    settings.QWEB_REFACTOR_ANSWER_TOKENS = 256
    settings.QWEB_CHAT_RATE_COUNT = 1000
    return settings


@pytest.fixture
def project(workspace, owner, tmp_path):
    from apps.repos import services
    from apps.repos.indexing import index_commit

    archive = tmp_path / "shop.zip"
    make_zip(PROJECT, archive)
    repository = services.repository_import_archive(
        workspace=workspace, user=owner, name="Shop", archive_path=archive, filename="shop.zip"
    )
    index_commit(repository=repository, sha=repository.head_sha)
    return repository


@pytest.fixture
def membership_of(workspace):
    from apps.workspaces.models import Membership

    return lambda user: Membership.objects.get(workspace=workspace, user=user)


@pytest.fixture
def propose(project, owner, membership_of):
    """Start a session and let 'the model' answer with ``answer``: the real build runs on it."""
    from apps.generation.models import GenerationJob
    from apps.refactors import services

    def run(
        answer,
        *,
        instruction="Rename total_with_tax to total_including_tax",
        scope=None,
        user=owner,
    ):
        session = services.refactor_create(
            membership=membership_of(user),
            repository=project,
            instruction=instruction,
            scope=scope,
        )
        changeset = session.changesets.get()
        return finish(changeset, answer)

    def finish(changeset, answer):
        job = changeset.job
        GenerationJob.objects.filter(pk=job.pk).update(
            state=GenerationJob.State.DONE, text=answer, finish_reason="stop"
        )
        job.refresh_from_db()
        services.changeset_job_finished(job)
        changeset = services.changeset_build(changeset_id=changeset.pk)
        return changeset

    run.finish = finish
    return run
