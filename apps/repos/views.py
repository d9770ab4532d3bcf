from __future__ import annotations

from pathlib import PurePosixPath

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from apps.repos import services
from apps.repos.forms import CloneForm, UploadForm, UploadVersionForm
from apps.repos.models import IndexedBlob, IndexedCommit, Repository
from apps.repos.search import ready_index, search_code, search_symbols
from apps.repos.selectors import (
    repository_get,
    repository_list,
    repository_task_get,
    repository_tasks_recent,
)
from apps.workspaces.models import Membership
from apps.workspaces.permissions import page_context, require_membership
from apps.workspaces.roles import Action
from qweb.lib.gitstore import GitStore, GitStoreError, is_binary
from qweb.views import add_service_errors, error_text

MAX_VIEW_BYTES = 1024 * 1024


@login_required
def repository_index(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug)
    return render(
        request,
        "repos/list.html",
        page_context(
            membership,
            tab="repos",
            repositories=repository_list(workspace=membership.workspace),
            tasks=repository_tasks_recent(workspace=membership.workspace),
        ),
    )


@login_required
@require_http_methods(["GET", "POST"])
def repository_new(request: HttpRequest, slug: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.CONTRIBUTE)
    asked = request.POST.get("mode") or request.GET.get("mode")
    mode = (
        Repository.Source(asked) if asked in Repository.Source.values else Repository.Source.UPLOAD
    )
    # Only the posted form is bound: a GET (or the other tab) shows no errors.
    posted = request.method == "POST"
    uploading = mode == Repository.Source.UPLOAD
    upload_form = UploadForm(request.POST, request.FILES) if posted and uploading else UploadForm()
    clone_form = CloneForm(request.POST) if posted and not uploading else CloneForm()
    if posted:
        form = upload_form if uploading else clone_form
        if form.is_valid():
            try:
                if uploading:
                    archive = form.cleaned_data["archive"]
                    task = services.repository_import_enqueue(
                        actor=membership,
                        name=form.cleaned_data["name"],
                        archive=archive,
                        filename=archive.name,
                        size=archive.size,
                    )
                else:
                    task = services.repository_clone_enqueue(
                        actor=membership,
                        name=form.cleaned_data["name"],
                        url=form.cleaned_data["url"],
                        branch=form.cleaned_data["branch"],
                        token=form.cleaned_data["token"],
                    )
            except ValidationError as error:
                add_service_errors(form, error)
            else:
                return redirect("repos:task", slug=slug, task_id=task.pk)
    return render(
        request,
        "repos/new.html",
        page_context(
            membership, tab="repos", mode=mode, upload_form=upload_form, clone_form=clone_form
        ),
        status=400 if posted else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def repository_upload_version(request: HttpRequest, slug: str, repo: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.CONTRIBUTE)
    repository = repository_get(workspace=membership.workspace, slug=repo)
    form = UploadVersionForm(request.POST or None, request.FILES or None)
    if repository.source != Repository.Source.UPLOAD:
        messages.error(request, "This repository is cloned: sync it instead of uploading.")
        return redirect("repos:tree", slug=slug, repo=repo)
    if request.method == "POST" and form.is_valid():
        archive = form.cleaned_data["archive"]
        try:
            task = services.repository_import_enqueue(
                actor=membership,
                name=repository.name,
                archive=archive,
                filename=archive.name,
                size=archive.size,
                repository=repository,
            )
        except ValidationError as error:
            add_service_errors(form, error)
        else:
            return redirect("repos:task", slug=slug, task_id=task.pk)
    return render(
        request,
        "repos/upload_version.html",
        page_context(
            membership,
            tab="repos",
            repository=repository,
            form=form,
            ref=repository.default_branch,
            commit=repository.head_sha,
        ),
        status=400 if form.errors else 200,
    )


@login_required
def repository_task(request: HttpRequest, slug: str, task_id: int) -> HttpResponse:
    membership = require_membership(request, slug)
    task = repository_task_get(workspace=membership.workspace, task_id=task_id)
    repository = None
    if task.state == task.State.DONE and task.result:
        repository = membership.workspace.repositories.filter(
            pk=task.result.get("repository_id")
        ).first()
    template = "repos/_task.html" if request.htmx else "repos/task.html"
    return render(
        request, template, page_context(membership, tab="repos", task=task, repository=repository)
    )


def _split_path(path: str) -> list[tuple[str, str]]:
    parts = [part for part in path.split("/") if part]
    return [(part, "/".join(parts[: index + 1])) for index, part in enumerate(parts)]


def _repository_at(
    request: HttpRequest, slug: str, repo: str, ref: str
) -> tuple[Membership, Repository, GitStore, str]:
    """The viewer's membership, the repository, its store and the commit ``ref`` names."""
    membership = require_membership(request, slug)
    repository = repository_get(workspace=membership.workspace, slug=repo)
    store = GitStore(repository.store_path)
    return membership, repository, store, _resolve(store, ref or repository.default_branch)


def _resolve(store: GitStore, ref: str) -> str:
    try:
        return store.resolve(ref)
    except GitStoreError:
        raise Http404("No such branch or commit.") from None


@login_required
def repository_tree(
    request: HttpRequest, slug: str, repo: str, ref: str = "", path: str = ""
) -> HttpResponse:
    membership, repository, store, commit = _repository_at(request, slug, repo, ref)
    ref = ref or repository.default_branch
    try:
        items = store.ls_tree(commit, path)
    except GitStoreError:
        raise Http404("No such folder.") from None
    items.sort(key=lambda item: (item.type != "tree", item.path.lower()))
    entries = [{"name": PurePosixPath(item.path).name, "item": item} for item in items]
    context = page_context(
        membership,
        tab="repos",
        repository=repository,
        ref=ref,
        commit=commit,
        path=path,
        crumbs=_split_path(path),
        entries=entries,
    )
    if request.htmx and request.GET.get("fragment") == "children":
        return render(request, "repos/_tree_children.html", context)
    if not path:
        context["commits"] = store.log(commit, limit=5)
        context["index_status"] = _index_status(repository)
    return render(request, "repos/tree.html", context)


@login_required
def repository_blob(
    request: HttpRequest, slug: str, repo: str, ref: str, path: str
) -> HttpResponse:
    membership, repository, store, commit = _repository_at(request, slug, repo, ref)
    parent = str(PurePosixPath(path).parent)
    try:
        listing = store.ls_tree(commit, "" if parent == "." else parent)
    except GitStoreError:
        raise Http404("No such file.") from None
    item = next((entry for entry in listing if entry.path == path and entry.type == "blob"), None)
    if item is None:
        raise Http404("No such file.")
    blob = store.read_blob(item.sha, MAX_VIEW_BYTES)
    context = page_context(
        membership,
        tab="repos",
        repository=repository,
        ref=ref,
        commit=commit,
        path=path,
        crumbs=_split_path(path),
        item=item,
        blob=blob,
        is_symlink=item.mode == "120000",
    )
    if item.mode != "120000" and not is_binary(blob.data[:8192]):
        text = blob.data.decode("utf-8", "replace")
        try:
            lexer = get_lexer_for_filename(path, stripnl=False)
        except ClassNotFound:
            lexer = TextLexer(stripnl=False)
        formatter = HtmlFormatter(
            linenos="table",
            lineanchors="L",
            anchorlinenos=True,
            cssclass="highlight",
            wrapcode=True,
        )
        context["highlighted"] = highlight(text, lexer, formatter)
        blob_row = IndexedBlob.objects.filter(sha=item.sha).only("definitions").first()
        context["outline"] = [
            {"name": row[0], "kind": row[1], "line": row[2], "parent": row[5]}
            for row in (blob_row.definitions if blob_row else [])
        ]
        context["line_count"] = text.count("\n") + (0 if text.endswith("\n") else 1)
    return render(request, "repos/blob.html", context)


@login_required
def repository_search(request: HttpRequest, slug: str, repo: str) -> HttpResponse:
    membership = require_membership(request, slug)
    repository = repository_get(workspace=membership.workspace, slug=repo)
    query = request.GET.get("q", "").strip()[:200]
    kind = "symbols" if request.GET.get("kind") == "symbols" else "code"
    indexed = ready_index(repository, repository.head_sha)
    code_hits, symbol_hits = [], []
    if query and indexed is not None:
        if kind == "code":
            code_hits = search_code(repository, indexed, query)
        else:
            symbol_hits = search_symbols(indexed, query)
    return render(
        request,
        "repos/search.html",
        page_context(
            membership,
            tab="repos",
            repository=repository,
            ref=repository.default_branch,
            commit=repository.head_sha,
            query=query,
            kind=kind,
            indexed=indexed,
            index_status=_index_status(repository),
            code_hits=code_hits,
            symbol_hits=symbol_hits,
        ),
    )


def _index_status(repository: Repository) -> IndexedCommit | None:
    return IndexedCommit.objects.filter(repository=repository, sha=repository.head_sha).first()


@login_required
def repository_index_status(request: HttpRequest, slug: str, repo: str) -> HttpResponse:
    membership = require_membership(request, slug)
    repository = repository_get(workspace=membership.workspace, slug=repo)
    return render(
        request,
        "repos/_index_status.html",
        page_context(membership, repository=repository, index_status=_index_status(repository)),
    )


@login_required
def repository_commits(request: HttpRequest, slug: str, repo: str) -> HttpResponse:
    membership = require_membership(request, slug)
    repository = repository_get(workspace=membership.workspace, slug=repo)
    store = GitStore(repository.store_path)
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    commits = store.log(repository.default_branch, limit=51, offset=(page - 1) * 50)
    return render(
        request,
        "repos/commits.html",
        page_context(
            membership,
            tab="repos",
            repository=repository,
            commits=commits[:50],
            page=page,
            has_next=len(commits) > 50,
        ),
    )


@login_required
def repository_archive(
    request: HttpRequest, slug: str, repo: str, ref: str, fmt: str
) -> HttpResponse:
    _, repository, store, commit = _repository_at(request, slug, repo, ref)
    name = f"{repository.slug}-{commit[:12]}"
    response = StreamingHttpResponse(
        store.archive(commit, fmt, prefix=f"{name}/"),
        content_type="application/zip" if fmt == "zip" else "application/gzip",
    )
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    return response


@login_required
@require_POST
def repository_sync(request: HttpRequest, slug: str, repo: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.CONTRIBUTE)
    repository = repository_get(workspace=membership.workspace, slug=repo)
    try:
        task = services.repository_sync_enqueue(actor=membership, repository=repository)
    except ValidationError as error:
        messages.error(request, error_text(error))
        return redirect("repos:tree", slug=slug, repo=repo)
    return redirect("repos:task", slug=slug, task_id=task.pk)


@login_required
@require_POST
def repository_delete(request: HttpRequest, slug: str, repo: str) -> HttpResponse:
    membership = require_membership(request, slug, Action.MANAGE_MEMBERS)
    repository = repository_get(workspace=membership.workspace, slug=repo)
    if request.POST.get("confirm") != repository.slug:
        messages.error(request, "Type the repository's address to confirm the deletion.")
        return redirect("repos:tree", slug=slug, repo=repo)
    services.repository_delete(actor=membership, repository=repository)
    messages.success(request, f"Repository “{repository.name}” was deleted.")
    return redirect("repos:index", slug=slug)
