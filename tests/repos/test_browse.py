"""Browsing any branch, commit and comparison: refs with slashes, history, commit diffs."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.urls import reverse

from apps.repos import services
from qweb.lib.gitstore import GitStore
from tests.repos.conftest import make_zip

FILES = {
    "shop/app/models.py": "class Order:\n    pass\n",
    "shop/app/views.py": "def index(request):\n    return 'hello'\n",
    "shop/README.md": "# Shop\n",
}


@pytest.fixture
def repository(workspace, owner, tmp_path):
    archive = tmp_path / "shop.zip"
    make_zip(FILES, archive)
    return services.repository_import_archive(
        workspace=workspace, user=owner, name="Shop", archive_path=archive, filename="shop.zip"
    )


@pytest.fixture
def branch(repository):
    """``qweb/refactor-7``: one commit on main's head, made the way apply makes them."""
    store = GitStore(repository.store_path)
    sha = store.commit_changes(
        parent=repository.head_sha,
        changes={
            "app/views.py": b"def index(request):\n    return 'hello, world'\n",
            "app/forms.py": b"class OrderForm:\n    pass\n",
        },
        ref="refs/qweb/changesets/test",
        author_name="Ada Admin",
        author_email="ada@example.com",
        message="Greet the world\n\nAnd add a form for orders.",
    )
    assert store.update_ref("refs/heads/qweb/refactor-7", sha, None)
    return sha


def url(name, *args):
    return reverse(f"repos:{name}", args=["acme", "shop", *args])


def page(client, address, status=200):
    response = client.get(address)
    assert response.status_code == status, address
    return response.content.decode() if status == 200 else ""


def test_a_branch_with_a_slash_is_browsed_in_tree_blob_and_history(client, owner, branch):
    client.force_login(owner)
    tree = page(client, url("tree_ref", "qweb/refactor-7"))
    assert "README.md" in tree
    assert "Greet the world" in tree  # the latest commit, above the files
    assert "forms.py" in page(client, url("tree_path", "qweb/refactor-7", "app"))
    blob = page(client, url("blob", "qweb/refactor-7", "app/views.py"))
    assert "hello, world" in blob
    history = page(client, url("commits_ref", "qweb/refactor-7"))
    assert "Greet the world" in history
    assert "2 commits" in history


def test_the_url_is_split_at_the_longest_ref_whatever_route_matched(client, owner, branch):
    client.force_login(owner)
    # "tree/qweb/refactor-7/app/" and "tree/qweb/refactor-7/app" name the same folder.
    assert "forms.py" in page(client, "/w/acme/r/shop/tree/qweb/refactor-7/app/")
    assert "forms.py" in page(client, "/w/acme/r/shop/tree/qweb/refactor-7/app")
    assert "hello, world" in page(client, "/w/acme/r/shop/blob/qweb/refactor-7/app/views.py")


def test_a_commit_sha_and_its_abbreviation_name_a_tree(client, owner, branch):
    client.force_login(owner)
    assert "forms.py" in page(client, url("tree_path", branch, "app"))
    assert "forms.py" in page(client, url("tree_path", branch[:8], "app"))


def test_bad_refs_and_paths_are_404(client, owner, branch):
    client.force_login(owner)
    for address in (
        url("tree_ref", "qweb/refactor-8"),
        url("tree_ref", "qweb"),
        url("tree_path", "qweb/refactor-7", "nope"),
        url("blob", "qweb/refactor-7", "app/nope.py"),
        url("blob", "qweb/refactor-7", "app"),  # a folder is not a file
        url("commits_ref", "no-such-branch"),
        url("commit", "0" * 40),
        url("commit", "qweb/refactor-7/app"),
        url("compare", "main...nope"),
        url("compare", "main"),
        url("archive", "qweb/refactor-8", "zip"),
        "/w/acme/r/shop/tree/--output=x/",
        "/w/acme/r/shop/commits/main/../../etc/passwd",
    ):
        page(client, address, status=404)


def test_the_branch_list_shows_refactor_branches_with_their_distance(client, owner, branch):
    client.force_login(owner)
    html = page(client, url("branches"))
    assert "qweb/refactor-7" in html
    assert "main" in html
    assert "1 ahead" in html and "0 behind" in html
    assert url("compare", "main...qweb/refactor-7") in html


def test_the_branch_list_filters_by_name(client, owner, branch):
    client.force_login(owner)
    html = page(client, url("branches") + "?q=refactor")
    assert 'data-branch="qweb/refactor-7"' in html
    assert 'data-branch="main"' not in html


def test_every_repository_page_has_a_branch_picker_linking_to_the_same_page(client, owner, branch):
    client.force_login(owner)
    pages = {
        url("tree_path", "main", "app"): url("tree_path", "qweb/refactor-7", "app"),
        url("blob", "main", "app/views.py"): url("blob", "qweb/refactor-7", "app/views.py"),
        url("commits_ref", "main"): url("commits_ref", "qweb/refactor-7"),
        url("commit", branch): url("tree_ref", "qweb/refactor-7"),
        url("compare", "main...qweb/refactor-7"): url("compare", "main...qweb/refactor-7"),
    }
    for address, switch in pages.items():
        html = page(client, address)
        assert "data-ref-picker" in html, address
        assert f'href="{switch}"' in html, address


def test_the_commit_page_shows_message_author_parents_and_the_diff(
    client, owner, repository, branch
):
    client.force_login(owner)
    html = page(client, url("commit", branch))
    assert "Greet the world" in html
    assert "And add a form for orders." in html
    assert "Ada Admin" in html and "ada@example.com" in html
    assert url("commit", repository.head_sha) in html  # the parent
    assert repository.head_sha[:7] in html
    # The same viewer as the review: numbered, highlighted unified rows.
    assert 'class="diff unified highlight"' in html
    assert '<tr class="ln-add"' in html and '<tr class="ln-remove"' in html
    assert "hello, world" in html
    assert "app/forms.py" in html and "added" in html
    assert "2</strong> files changed" in html
    assert "comment-add" not in html and 'data-decide="accept"' not in html


def test_the_commit_page_can_show_the_diff_side_by_side(client, owner, branch):
    client.force_login(owner)
    html = page(client, url("commit", branch) + "?view=split")
    assert 'class="diff split highlight"' in html


def test_a_root_commit_shows_every_file_as_added(client, owner, repository):
    client.force_login(owner)
    html = page(client, url("commit", repository.head_sha))
    assert "the first commit" in html
    assert "app/models.py" in html and "README.md" in html
    assert "3</strong> files changed" in html


def test_compare_shows_the_commits_and_the_changes_since_the_refs_diverged(
    client, owner, repository, branch
):
    client.force_login(owner)
    html = page(client, url("compare", "main...qweb/refactor-7"))
    assert "Greet the world" in html
    assert "<strong>1</strong> commit ahead of and <strong>0</strong> behind" in html
    assert "hello, world" in html
    assert 'class="diff unified highlight"' in html
    same = page(client, url("compare", "main...main"))
    assert "Nothing to compare" in same


def test_compare_in_either_direction_and_directly(client, owner, repository, branch):
    client.force_login(owner)
    # The branch already holds main: nothing of main's is new to it.
    backwards = page(client, url("compare", "qweb/refactor-7...main"))
    assert "No changes." in backwards
    direct = page(client, url("compare", "qweb/refactor-7..main"))
    assert '<tr class="ln-remove"' in direct  # main lacks the branch's change
    assert "The direct diff" in direct


def test_the_compare_form_redirects_to_the_comparison(client, owner, branch):
    client.force_login(owner)
    response = client.get(url("compare_pick") + "?base=main&head=qweb/refactor-7")
    assert response.status_code == 302
    assert response["Location"] == url("compare", "main...qweb/refactor-7")
    assert "qweb/refactor-7" in page(client, url("compare_pick"))


def test_a_files_history_lists_only_the_commits_that_changed_it(client, owner, repository, branch):
    client.force_login(owner)
    views = page(client, url("commits_path", "qweb/refactor-7", "app/views.py"))
    assert "Greet the world" in views
    assert "2 commits" in views
    models = page(client, url("commits_path", "qweb/refactor-7", "app/models.py"))
    assert "Greet the world" not in models
    assert "1 commit" in models


def test_a_download_of_a_branch_with_a_slash_holds_its_tree(client, owner, branch):
    client.force_login(owner)
    response = client.get(url("archive", "qweb/refactor-7", "zip"))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="shop-qweb-refactor-7.zip"'
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert "shop-qweb-refactor-7/app/forms.py" in archive.namelist()
    tar = client.get(url("archive", "qweb/refactor-7", "tar.gz"))
    assert tar.status_code == 200
    assert tar["Content-Type"] == "application/gzip"


def test_numbers_have_thousands_separators(client, owner, repository, monkeypatch):
    monkeypatch.setattr(GitStore, "count_commits", lambda self, ref, paths=(): 12345)
    client.force_login(owner)
    assert "12,345 commits" in page(client, url("commits_ref", "main"))


def _browse_urls(branch):
    return [
        url("tree_ref", "qweb/refactor-7"),
        url("blob", "qweb/refactor-7", "app/views.py"),
        url("commits_ref", "qweb/refactor-7"),
        url("commits_path", "qweb/refactor-7", "app/views.py"),
        url("commit", branch),
        url("compare", "main...qweb/refactor-7"),
        url("compare_pick"),
        url("branches"),
        url("archive", "qweb/refactor-7", "zip"),
    ]


def test_a_viewer_can_browse_everything(client, viewer, branch):
    client.force_login(viewer)
    for address in _browse_urls(branch):
        assert client.get(address).status_code == 200, address


def test_an_outsider_gets_404_on_every_browse_page(client, outsider, branch):
    client.force_login(outsider)
    for address in _browse_urls(branch):
        assert client.get(address).status_code == 404, address


def test_signed_out_visitors_are_sent_to_sign_in(client, branch):
    response = client.get(url("commit", branch))
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_raw_serves_a_file_as_plain_text_on_any_branch(client, owner, branch):
    client.force_login(owner)
    response = client.get(url("raw", "qweb/refactor-7", "app/views.py"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == b"def index(request):\n    return 'hello, world'\n"
    page(client, url("raw", "qweb/refactor-7", "app"), status=404)
    page(client, url("raw", "qweb/refactor-7", "app/nope.py"), status=404)


def test_a_branch_says_how_far_it_is_from_the_default_branch(client, owner, branch):
    client.force_login(owner)
    html = page(client, url("tree_ref", "qweb/refactor-7"))
    assert "<strong>1</strong> commit ahead of and <strong>0</strong> behind" in html
    assert url("compare", "main...qweb/refactor-7") in html
    assert 'data-testid="branch-status"' not in page(client, url("tree_ref", "main"))


def test_a_files_address_under_tree_leads_to_the_file(client, owner, branch):
    client.force_login(owner)
    response = client.get(url("tree_path", "qweb/refactor-7", "app/views.py"))
    assert response.status_code == 302
    assert response["Location"] == url("blob", "qweb/refactor-7", "app/views.py")


def test_the_picker_lists_the_newest_refs_and_always_the_current_one(
    client, owner, repository, branch, monkeypatch
):
    from apps.repos import views

    monkeypatch.setattr(views, "MAX_PICKER_REFS", 1)
    client.force_login(owner)
    # Both heads were committed in the same second: git's name order breaks the tie.
    on_main = page(client, url("tree_ref", "main"))
    assert 'data-ref-name="main"' in on_main
    assert 'data-ref-name="qweb/refactor-7"' not in on_main
    assert "View all 2 branches" in on_main
    on_branch = page(client, url("tree_ref", "qweb/refactor-7"))
    assert 'data-ref-name="main"' in on_branch
    assert 'data-ref-name="qweb/refactor-7"' in on_branch


def test_a_merge_commit_lists_both_parents_and_diffs_against_the_first(
    client, owner, repository, branch
):
    store = GitStore(repository.store_path)
    merge = store.commit_tree(
        store.tree_of(branch),
        parents=[repository.head_sha, branch],
        author_name="Ada Admin",
        author_email="ada@example.com",
        message="Merge qweb/refactor-7",
    )
    assert store.update_ref("refs/heads/main", merge, repository.head_sha)
    client.force_login(owner)
    html = page(client, url("commit", merge))
    assert url("commit", repository.head_sha) in html and url("commit", branch) in html
    assert "against the first parent" in html
    assert "hello, world" in html  # the branch's change, seen from main's side
    history = page(client, url("commits_ref", "main"))
    assert "Merge qweb/refactor-7" in history and "Greet the world" in history
