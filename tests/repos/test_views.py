"""Browsing and managing repositories through the pages, for each role."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest
from django.urls import reverse

from apps.ops.models import Task
from apps.repos import services
from apps.repos.models import Repository
from tests.repos.conftest import make_zip


@pytest.fixture
def repository(workspace, owner, tmp_path):
    archive = tmp_path / "shop.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in {
            "shop/app/models.py": b"class Order:\n    pass\n",
            "shop/README.md": b"# Shop\n",
            "shop/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00binary",
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("shop/link.md")
        link.type = tarfile.SYMTYPE
        link.linkname = "README.md"
        tar.addfile(link)
    return services.repository_import_archive(
        workspace=workspace, user=owner, name="Shop", archive_path=archive, filename=archive.name
    )


def _urls(repository):
    ws, repo = repository.workspace.slug, repository.slug
    return [
        reverse("repos:index", args=[ws]),
        reverse("repos:tree", args=[ws, repo]),
        reverse("repos:tree_path", args=[ws, repo, "main", "app"]),
        reverse("repos:blob", args=[ws, repo, "main", "app/models.py"]),
        reverse("repos:commits", args=[ws, repo]),
        reverse("repos:archive", args=[ws, repo, "main", "zip"]),
    ]


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_every_role_can_browse(client, repository, users_by_role, role):
    client.force_login(users_by_role[role])
    for url in _urls(repository):
        assert client.get(url).status_code == 200, url


def test_an_outsider_gets_404_everywhere(client, repository, outsider):
    client.force_login(outsider)
    for url in _urls(repository):
        assert client.get(url).status_code == 404, url
    ws = repository.workspace.slug
    assert client.post(reverse("repos:sync", args=[ws, repository.slug])).status_code == 404
    assert (
        client.post(
            reverse("repos:delete", args=[ws, repository.slug]), {"confirm": "shop"}
        ).status_code
        == 404
    )
    assert Repository.objects.filter(pk=repository.pk).exists()


def test_the_file_view_highlights_code_with_line_anchors(client, repository, owner):
    client.force_login(owner)
    page = client.get(reverse("repos:blob", args=["acme", "shop", "main", "app/models.py"]))
    html = page.content.decode()
    assert 'id="L-1"' in html or 'name="L-1"' in html
    assert '<span class="k">class</span>' in html


def test_binary_files_are_not_shown(client, repository, owner):
    client.force_login(owner)
    page = client.get(reverse("repos:blob", args=["acme", "shop", "main", "logo.png"]))
    assert b"Binary file" in page.content


def test_symlinks_are_shown_as_links_and_never_followed(client, repository, owner):
    client.force_login(owner)
    page = client.get(reverse("repos:blob", args=["acme", "shop", "main", "link.md"]))
    assert b"Symbolic link to" in page.content
    assert b"# Shop" not in page.content


def test_missing_paths_and_refs_are_404(client, repository, owner):
    client.force_login(owner)
    assert (
        client.get(reverse("repos:blob", args=["acme", "shop", "main", "nope.py"])).status_code
        == 404
    )
    assert (
        client.get(reverse("repos:tree_ref", args=["acme", "shop", "no-such-branch"])).status_code
        == 404
    )
    assert (
        client.get(
            reverse("repos:blob", args=["acme", "shop", "main", "../../etc/passwd"])
        ).status_code
        == 404
    )


def test_the_download_holds_the_tree_at_that_commit(client, repository, owner):
    client.force_login(owner)
    response = client.get(reverse("repos:archive", args=["acme", "shop", "main", "zip"]))
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = {name.split("/", 1)[1] for name in archive.namelist()}
    assert "app/models.py" in names
    assert response["Content-Disposition"].startswith('attachment; filename="shop-')


def _damage(repository) -> None:
    for pack in (repository.store_path / "objects" / "pack").iterdir():
        pack.unlink()


def test_a_damaged_store_is_explained_on_a_page_not_a_server_error(client, repository, owner):
    _damage(repository)
    client.force_login(owner)
    response = client.get(reverse("repos:commits", args=["acme", "shop"]))
    assert response.status_code == 503
    html = response.content.decode()
    assert "The repository&#x27;s git store failed: git " in html
    assert "failed: fatal: missing object" in html


def test_a_damaged_store_answers_htmx_with_the_reason_as_text(client, repository, owner):
    _damage(repository)
    client.force_login(owner)
    response = client.get(reverse("repos:commits", args=["acme", "shop"]), HTTP_HX_REQUEST="true")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/plain")
    assert response.content.decode().startswith("The repository's git store failed: ")


def test_the_lazy_tree_returns_only_the_children(client, repository, owner):
    client.force_login(owner)
    url = reverse("repos:tree_path", args=["acme", "shop", "main", "app"]) + "?fragment=children"
    fragment = client.get(url, headers={"HX-Request": "true"}).content.decode()
    assert "models.py" in fragment
    assert "<html" not in fragment


def test_a_viewer_cannot_import(client, workspace, viewer, tmp_path):
    client.force_login(viewer)
    archive = tmp_path / "p.zip"
    make_zip({"p/a.py": "x"}, archive)
    with archive.open("rb") as handle:
        response = client.post(
            reverse("repos:new", args=["acme"]), {"mode": "upload", "name": "P", "archive": handle}
        )
    assert response.status_code == 403
    assert not Task.objects.exists()


def test_a_member_upload_queues_an_import_and_shows_its_progress(
    client, workspace, member, tmp_path
):
    client.force_login(member)
    archive = tmp_path / "p.zip"
    make_zip({"p/a.py": "x"}, archive)
    with archive.open("rb") as handle:
        response = client.post(
            reverse("repos:new", args=["acme"]), {"mode": "upload", "name": "P", "archive": handle}
        )
    task = Task.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("repos:task", args=["acme", task.pk])
    page = client.get(response["Location"])
    assert b"<progress" in page.content


def test_an_upload_without_a_file_says_so(client, workspace, member):
    client.force_login(member)
    response = client.post(reverse("repos:new", args=["acme"]), {"mode": "upload", "name": "P"})
    assert response.status_code == 400
    assert b"This field is required" in response.content
    assert not Task.objects.exists()


def test_a_member_cannot_delete_but_an_admin_can(client, repository, member, admin):
    url = reverse("repos:delete", args=["acme", "shop"])
    client.force_login(member)
    assert client.post(url, {"confirm": "shop"}).status_code == 403
    assert Repository.objects.filter(pk=repository.pk).exists()
    client.force_login(admin)
    response = client.post(url, {"confirm": "shop"})
    assert response.status_code == 302
    assert not Repository.objects.filter(pk=repository.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_deleting_a_repository_removes_its_git_store(client, tmp_path):
    from apps.workspaces.roles import Role
    from tests import factories

    workspace = factories.workspace_create(slug="acme")
    admin = factories.membership_create(workspace=workspace, role=Role.ADMIN).user
    archive = tmp_path / "p.zip"
    make_zip({"p/a.py": "x"}, archive)
    repository = services.repository_import_archive(
        workspace=workspace, user=admin, name="P", archive_path=archive, filename="p.zip"
    )
    assert repository.store_path.exists()
    client.force_login(admin)
    client.post(reverse("repos:delete", args=["acme", "p"]), {"confirm": "p"})
    assert not repository.store_path.exists()


def test_a_newer_archive_uploaded_from_the_page_becomes_the_next_commit(
    client, repository, member, tmp_path
):
    from apps.ops.runner import TaskRunner
    from qweb.lib.gitstore import GitStore

    client.force_login(member)
    archive = tmp_path / "shop-2.zip"
    make_zip({"shop/app/models.py": "class Order:\n    total = 0\n"}, archive)
    with archive.open("rb") as handle:
        response = client.post(reverse("repos:upload", args=["acme", "shop"]), {"archive": handle})
    assert response.status_code == 302
    TaskRunner(worker="w", kinds=["repo.import"]).run_once()
    repository.refresh_from_db()
    commits = GitStore(repository.store_path).log(repository.default_branch)
    assert len(commits) == 2
    assert commits[0].author_email == member.email


def test_a_viewer_cannot_upload_a_new_version(client, repository, viewer, tmp_path):
    client.force_login(viewer)
    archive = tmp_path / "shop-2.zip"
    make_zip({"shop/a.py": "x"}, archive)
    with archive.open("rb") as handle:
        response = client.post(reverse("repos:upload", args=["acme", "shop"]), {"archive": handle})
    assert response.status_code == 403
    assert not Task.objects.filter(kind="repo.import").exists()


@pytest.mark.parametrize("mode", ["upload", "clone"])
def test_the_add_repository_page_shows_no_errors_before_anything_is_posted(
    client, workspace, member, mode
):
    client.force_login(member)

    response = client.get(reverse("repos:new", args=["acme"]), {"mode": mode})

    assert response.status_code == 200
    assert b"This field is required" not in response.content
    assert b"field-error" not in response.content
    assert b'aria-invalid="true"' not in response.content


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"mode": "upload", "name": ""}, 2),  # name and archive
        ({"mode": "upload", "name": "P"}, 1),  # archive
        ({"mode": "clone", "name": "", "url": ""}, 2),  # name and URL
        ({"mode": "clone", "name": "P", "url": ""}, 1),  # URL
        ({"mode": "sideways", "name": "P"}, 1),  # an unknown mode is the upload form
    ],
)
def test_a_bad_add_repository_post_shows_each_error_once_and_saves_nothing(
    client, workspace, member, data, errors
):
    client.force_login(member)

    response = client.post(reverse("repos:new", args=["acme"]), data)

    assert response.status_code == 400
    assert response.content.count(b"This field is required") == errors
    assert response.content.count(b'class="field-error"') == errors
    assert not Task.objects.exists()
    assert not Repository.objects.exists()


def test_the_upload_version_page_shows_no_errors_before_anything_is_posted(
    client, repository, member
):
    client.force_login(member)

    response = client.get(reverse("repos:upload", args=["acme", "shop"]))

    assert response.status_code == 200
    assert b"This field is required" not in response.content
    assert b"field-error" not in response.content
