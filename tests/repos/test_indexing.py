"""Indexing commits: per blob, incremental, honouring .gitignore."""

from __future__ import annotations

import pytest

from apps.ops.models import Task
from apps.ops.runner import TaskRunner
from apps.repos import services
from apps.repos.indexing import index_commit
from apps.repos.models import IndexedBlob, IndexedCommit
from qweb.lib.codeindex.search import FileMaterial, SearchIndex
from tests.repos.conftest import make_zip

PROJECT = {
    "p/.gitignore": "*.log\nbuild/\n",
    "p/shop/models.py": (
        "from django.db import models\n\n\n"
        "class Order(models.Model):\n"
        "    def total_price(self):\n"
        "        return 1\n"
    ),
    "p/shop/views.py": (
        "from shop.models import Order\n\n\ndef order_detail(request):\n    return Order()\n"
    ),
    "p/web/app.js": "export function renderCart(items) {\n  return items.length;\n}\n",
    "p/static/app.min.js": "var a=1;" * 2000,
    "p/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00",
    "p/debug.log": "noise\n",
    "p/build/out.py": "x = 1\n",
}


@pytest.fixture
def repository(workspace, owner, tmp_path):
    archive = tmp_path / "p.zip"
    make_zip(PROJECT, archive)
    return services.repository_import_archive(
        workspace=workspace, user=owner, name="P", archive_path=archive, filename="p.zip"
    )


def test_importing_queues_indexing_of_the_new_commit(repository):
    indexed = IndexedCommit.objects.get(repository=repository)
    assert indexed.sha == repository.head_sha
    assert indexed.state == IndexedCommit.State.QUEUED
    assert Task.objects.filter(kind="repo.index").count() == 1


def test_the_index_task_lists_files_without_the_ignored_ones(repository):
    assert TaskRunner(worker="w", kinds=["repo.index"]).run_once()
    indexed = IndexedCommit.objects.get(repository=repository)
    assert indexed.state == IndexedCommit.State.READY
    paths = [row[0] for row in indexed.manifest]
    assert paths == sorted(paths)
    assert "debug.log" not in paths
    assert "build/out.py" not in paths
    assert {"shop/models.py", "shop/views.py", "web/app.js", ".gitignore"} <= set(paths)
    assert indexed.files_ignored == 2


def test_definitions_and_flags_are_stored_per_blob(repository):
    indexed = index_commit(repository=repository, sha=repository.head_sha)
    blobs = {path: IndexedBlob.objects.get(sha=sha) for path, sha, _ in indexed.manifest}
    models = blobs["shop/models.py"]
    assert models.language == "python"
    names = {(row[0], row[1]) for row in models.definitions}
    assert ("Order", "class") in names
    assert ("total_price", "method") in names
    assert blobs["web/app.js"].definitions[0][0] == "renderCart"
    assert blobs["static/app.min.js"].minified
    assert blobs["logo.png"].binary
    assert models.tokens > 0
    assert any(name == "Order" for name, _ in blobs["shop/views.py"].references)


def test_a_new_commit_parses_only_the_files_that_changed(repository, owner, tmp_path):
    first = index_commit(repository=repository, sha=repository.head_sha)
    archive = tmp_path / "p2.zip"
    make_zip(
        {**PROJECT, "p/web/app.js": "export function renderCart(items) {\n  return 0;\n}\n"},
        archive,
    )
    services.repository_import_archive(
        workspace=repository.workspace,
        user=owner,
        name="",
        archive_path=archive,
        filename="p2.zip",
        repository=repository,
    )
    repository.refresh_from_db()
    second = index_commit(repository=repository, sha=repository.head_sha)
    assert second.files_parsed == 1
    assert second.files_reused == first.files_total - 1
    assert second.files_total == first.files_total


def test_the_search_index_finds_code_by_identifier_parts(repository):
    indexed = index_commit(repository=repository, sha=repository.head_sha)
    index = SearchIndex.load(indexed.search_dir)
    [(best, _score), *_] = index.search("total price of an order", k=3)
    assert index.document(best).path == "shop/models.py"
    [(symbol, _), *_] = index.search_symbols("renderCart")
    assert (symbol.path, symbol.start_line) == ("web/app.js", 1)


def test_a_failed_index_is_marked_failed_with_the_reason(repository):
    IndexedCommit.objects.filter(repository=repository).update(sha="0" * 40)
    Task.objects.filter(kind="repo.index").update(
        payload={"repository_id": repository.pk, "sha": "0" * 40}
    )
    TaskRunner(worker="w", kinds=["repo.index"]).run_once()
    indexed = IndexedCommit.objects.get(repository=repository)
    assert indexed.state == IndexedCommit.State.FAILED
    assert Task.objects.get(kind="repo.index").state == Task.State.FAILED


def test_the_search_page_marks_matches_and_links_to_lines(client, repository, owner):
    index_commit(repository=repository, sha=repository.head_sha)
    client.force_login(owner)
    page = client.get("/w/acme/r/p/search/?q=order_detail").content.decode()
    assert "shop/views.py" in page
    assert "<mark>order_detail</mark>" in page
    assert f"/w/acme/r/p/blob/{repository.head_sha}/shop/views.py#L-" in page


def test_symbol_search_lists_definitions(client, repository, owner):
    index_commit(repository=repository, sha=repository.head_sha)
    client.force_login(owner)
    page = client.get("/w/acme/r/p/search/?q=total_price&kind=symbols").content.decode()
    assert "Order.total_price" in page or "total_price" in page
    assert "shop/models.py:5" in page


def test_search_before_indexing_says_the_index_is_not_ready(client, repository, owner):
    client.force_login(owner)
    page = client.get("/w/acme/r/p/search/?q=order").content.decode()
    assert "Queued" in page
    assert "<mark>" not in page


def test_search_escapes_code_it_shows(client, workspace, owner, tmp_path):
    archive = tmp_path / "x.zip"
    make_zip({"x/evil.py": "def script_tag():\n    return '<script>alert(1)</script>'\n"}, archive)
    repository = services.repository_import_archive(
        workspace=workspace, user=owner, name="X", archive_path=archive, filename="x.zip"
    )
    index_commit(repository=repository, sha=repository.head_sha)
    client.force_login(owner)
    page = client.get("/w/acme/r/x/search/?q=script+alert").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;" in page


def test_the_file_view_shows_the_outline(client, repository, owner):
    index_commit(repository=repository, sha=repository.head_sha)
    client.force_login(owner)
    page = client.get("/w/acme/r/p/blob/main/shop/models.py").content.decode()
    assert 'href="#L-4"' in page
    assert "total_price" in page


# Indexing a new commit costs what changed: the search index starts from the previous
# commit's, and each blob's search material is stored with its row.

QUERIES = ["total price of an order", "order detail", "renderCart", "cart", "zebra"]


def _import_next(repository, owner, tmp_path, files, name="next.zip"):
    archive = tmp_path / name
    make_zip(files, archive)
    services.repository_import_archive(
        workspace=repository.workspace,
        user=owner,
        name="",
        archive_path=archive,
        filename=name,
        repository=repository,
    )
    repository.refresh_from_db()
    return repository.head_sha


def _results(indexed):
    index = SearchIndex.load(indexed.search_dir)
    return [(index.search(query, k=20), index.search_symbols(query)) for query in QUERIES]


def _material(path, indexed):
    sha = dict((row[0], row[1]) for row in indexed.manifest)[path]
    return IndexedBlob.objects.get(sha=sha).search_material


CHANGED = {**PROJECT, "p/web/app.js": "export function renderCart(zebraItems) {\n  return 0;\n}\n"}


def test_each_searchable_blob_keeps_its_search_material(repository):
    indexed = index_commit(repository=repository, sha=repository.head_sha)
    sha = dict((row[0], row[1]) for row in indexed.manifest)["shop/models.py"]
    material = FileMaterial.from_bytes(bytes(_material("shop/models.py", indexed)), sha)
    assert "price" in material.terms.vocabulary
    assert ("Order", "class") in {(d.name, d.kind) for d in material.definitions}
    assert _material("logo.png", indexed) is None


def test_a_new_commit_tokenizes_only_the_files_that_changed(repository, owner, tmp_path):
    index_commit(repository=repository, sha=repository.head_sha)
    # With every stored material gone, a blob tokenized again would get it back.
    IndexedBlob.objects.update(search_material=None)
    second = index_commit(
        repository=repository, sha=_import_next(repository, owner, tmp_path, CHANGED)
    )
    assert _material("web/app.js", second) is not None
    assert _material("shop/models.py", second) is None
    assert _material("shop/views.py", second) is None
    assert IndexedBlob.objects.exclude(search_material=None).count() == 1
    index = SearchIndex.load(second.search_dir)
    assert index.document(index.search("zebra items")[0][0]).path == "web/app.js"


def test_an_updated_index_searches_like_one_built_from_scratch(repository, owner, tmp_path):
    first = index_commit(repository=repository, sha=repository.head_sha)
    # One file changed, one moved, one removed.
    moved = {path: text for path, text in CHANGED.items() if not path.startswith("p/shop/")}
    moved["p/shop/orders.py"] = CHANGED["p/shop/models.py"]
    updated = index_commit(
        repository=repository, sha=_import_next(repository, owner, tmp_path, moved)
    )
    results = _results(updated)
    # The same commit from nothing: no earlier index, no stored material.
    first.delete()
    IndexedBlob.objects.all().delete()
    scratch = index_commit(repository=repository, sha=updated.sha)
    assert _results(scratch) == results
    assert scratch.tokens_total == updated.tokens_total
    assert results[0][0][0][0].startswith("shop/orders.py#")
    assert not [doc for doc, _ in results[1][0] if doc.startswith("shop/views.py")]


def test_a_blob_known_from_another_repository_is_not_tokenized_again(
    repository, workspace, owner, tmp_path
):
    first = index_commit(repository=repository, sha=repository.head_sha)
    sha = dict((row[0], row[1]) for row in first.manifest)["shop/views.py"]
    # Stand-in material, valid for that blob: only a reader of stored material can find it.
    planted = FileMaterial.from_text("def zebra_marker():\n    pass\n")
    IndexedBlob.objects.filter(sha=sha).update(search_material=planted.to_bytes(sha))
    archive = tmp_path / "copy.zip"
    make_zip(PROJECT, archive)
    copy = services.repository_import_archive(
        workspace=workspace, user=owner, name="Copy", archive_path=archive, filename="copy.zip"
    )
    indexed = index_commit(repository=copy, sha=copy.head_sha)
    assert indexed.files_parsed == 0
    index = SearchIndex.load(indexed.search_dir)
    assert index.document(index.search("zebra marker")[0][0]).path == "shop/views.py"


def test_damaged_stored_material_is_rebuilt_not_trusted(repository, workspace, owner, tmp_path):
    first = index_commit(repository=repository, sha=repository.head_sha)
    sha = dict((row[0], row[1]) for row in first.manifest)["shop/views.py"]
    stored = bytearray(IndexedBlob.objects.get(sha=sha).search_material)
    stored[-5] ^= 0xFF
    IndexedBlob.objects.filter(sha=sha).update(search_material=bytes(stored))
    archive = tmp_path / "copy.zip"
    make_zip(PROJECT, archive)
    copy = services.repository_import_archive(
        workspace=workspace, user=owner, name="Copy", archive_path=archive, filename="copy.zip"
    )
    indexed = index_commit(repository=copy, sha=copy.head_sha)
    index = SearchIndex.load(indexed.search_dir)
    assert index.document(index.search("order_detail")[0][0]).path == "shop/views.py"
    repaired = IndexedBlob.objects.get(sha=sha).search_material
    assert "detail" in FileMaterial.from_bytes(bytes(repaired), sha).terms.vocabulary


def test_a_damaged_earlier_index_is_not_started_from(repository, owner, tmp_path):
    first = index_commit(repository=repository, sha=repository.head_sha)
    data = first.search_dir / "index.msgpack"
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    data.write_bytes(bytes(damaged))
    (first.search_dir / "blobs.msgpack").write_bytes(b"not a blob table")
    second = index_commit(
        repository=repository, sha=_import_next(repository, owner, tmp_path, CHANGED)
    )
    results = _results(second)
    second.delete()
    first.delete()
    assert _results(index_commit(repository=repository, sha=repository.head_sha)) == results
