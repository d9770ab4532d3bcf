"""Applied work is reachable: an apply's record links to its commit and branch, which browse."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.refactors import services as refactor_services
from apps.workspaces.models import Membership
from tests.refactors.conftest import REFACTOR_SETTINGS, project_import, proposal_write
from tests.refactors.test_flow import RENAME


@pytest.fixture
def applied(settings, workspace, owner, tmp_path, tiny_model_dir):
    """A refactor of the billing project applied, through the real services, to its branch."""
    settings.QWEB_MODEL_DIR = tiny_model_dir
    for name, value in REFACTOR_SETTINGS.items():
        setattr(settings, name, value)
    membership = Membership.objects.get(workspace=workspace, user=owner)
    repository = project_import(workspace=workspace, owner=owner, scratch=tmp_path)
    changeset = proposal_write(membership=membership, repository=repository, answer=RENAME)
    refactor_services.decisions_all(membership=membership, changeset=changeset, verdict="accept")
    record = refactor_services.changeset_apply(membership=membership, changeset=changeset)
    assert record.state == record.State.APPLIED
    return record


def test_the_apply_record_links_to_its_commit_and_branch_which_both_browse(
    client, owner, viewer, applied
):
    session = applied.changeset.session
    branch = applied.target_branch
    assert branch == f"qweb/refactor-{session.pk}"
    commit_url = reverse("repos:commit", args=["acme", "shop", applied.result_commit])
    branch_url = reverse("repos:tree_ref", args=["acme", "shop", branch])
    client.force_login(owner)
    detail = client.get(reverse("refactors:detail", args=["acme", session.pk])).content.decode()
    assert f'href="{commit_url}"' in detail
    assert f'href="{branch_url}"' in detail

    client.force_login(viewer)
    commit = client.get(commit_url).content.decode()
    assert "Rename total_with_tax" in commit
    assert "total_including_tax" in commit
    assert 'class="diff unified highlight"' in commit
    assert client.get(branch_url).status_code == 200
    branches = client.get(reverse("repos:branches", args=["acme", "shop"])).content.decode()
    assert f'data-branch="{branch}"' in branches
    assert reverse("refactors:detail", args=["acme", session.pk]) in branches
    download = client.get(reverse("repos:archive", args=["acme", "shop", branch, "zip"]))
    assert download.status_code == 200
