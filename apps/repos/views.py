from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import quote

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
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
    diff_view,
    ref_path_find,
    refactor_branches,
    repository_get,
    repository_list,
    repository_refs,
    repository_task_get,
    repository_tasks_recent,
)
from apps.workspaces.models import Membership
from apps.workspaces.permissions import page_context, require_membership
from apps.workspaces.roles import Action
from qweb.lib.gitstore import EMPTY_TREE, GitStore, GitStoreError, RefInfo, RefPath, is_binary
from qweb.views import add_service_errors, error_text

MAX_VIEW_BYTES = 1024 * 1024
MAX_CONTEXT = 200
MAX_RAW_BYTES = 20 * 1024 * 1024
MAX_COMPARE_COMMITS = 250
# Counting a branch's distance from the default branch is one git call each.
MAX_BRANCHES_COUNTED = 100
MAX_PICKER_REFS = 100


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


def _joined(ref: str, path: str) -> str:
    # A route splits "<ref>/<path>" at a slash of its own choosing; the store knows which
    # leading part is a ref (branch names hold slashes: qweb/refactor-2).
    return "/".join(part for part in (ref.strip("/"), path.strip("/")) if part)


@dataclass
class _Browse:
    """What every repository page starts from: who asks, the repository, its refs, and the
    ref and path the URL names."""

    membership: Membership
    repository: Repository
    store: GitStore
    refs: list[RefInfo]
    at: RefPath

    def context(self, page_url: Callable[[str], str], **extra: object) -> dict[str, object]:
        """The page's context, with the branch picker's entries pointing at ``page_url``."""
        picker = [
            {
                "name": ref.name,
                "kind": ref.kind,
                "url": page_url(ref.name),
                "current": ref.name == self.at.ref,
                "default": ref.kind == "branch" and ref.name == self.repository.default_branch,
            }
            for ref in _picked(self.refs, self.at.ref)
        ]
        return page_context(
            self.membership,
            tab="repos",
            repository=self.repository,
            ref=self.at.ref,
            ref_kind=self.at.kind,
            commit=self.at.commit,
            path=self.at.path,
            crumbs=_split_path(self.at.path),
            picker=picker,
            branch_count=sum(ref.kind == "branch" for ref in self.refs),
            **extra,
        )


def _picked(refs: list[RefInfo], current: str) -> list[RefInfo]:
    """The picker's refs: the newest ``MAX_PICKER_REFS`` (the branch list has them all),
    always with the current one."""
    picked = refs[:MAX_PICKER_REFS]
    if all(ref.name != current for ref in picked):
        picked += [ref for ref in refs[MAX_PICKER_REFS:] if ref.name == current]
    return picked


def _browse(request: HttpRequest, slug: str, repo: str, rest: str) -> _Browse:
    membership = require_membership(request, slug)
    repository = repository_get(workspace=membership.workspace, slug=repo)
    refs = repository_refs(repository=repository)
    at = ref_path_find(repository=repository, refs=refs, rest=rest)
    return _Browse(membership, repository, GitStore(repository.store_path), refs, at)


def _url(name: str, browse: _Browse, *args: str) -> str:
    ws, repo = browse.membership.workspace.slug, browse.repository.slug
    return reverse(f"repos:{name}", args=[ws, repo, *[arg for arg in args if arg]])


def _tree_url(browse: _Browse, ref: str, path: str = "") -> str:
    return _url("tree_path" if path else "tree_ref", browse, ref, path)


@login_required
def repository_tree(
    request: HttpRequest, slug: str, repo: str, ref: str = "", path: str = ""
) -> HttpResponse:
    browse = _browse(request, slug, repo, _joined(ref, path))
    at, store = browse.at, browse.store
    try:
        items = store.ls_tree(at.commit, at.path)
    except GitStoreError:
        item = store.entry(at.commit, at.path)
        if item is not None and item.type == "blob":  # a file's address under tree/
            return redirect(_url("blob", browse, at.ref, at.path))
        raise Http404("No such folder.") from None
    items.sort(key=lambda item: (item.type != "tree", item.path.lower()))
    entries = [{"name": PurePosixPath(item.path).name, "item": item} for item in items]
    context = browse.context(
        lambda name: _tree_url(browse, name, at.path), entries=entries, page="tree"
    )
    if request.htmx and request.GET.get("fragment") == "children":
        return render(request, "repos/_tree_children.html", context)
    paths = [at.path] if at.path else []
    context["last_commit"] = next(iter(store.log(at.commit, limit=1, paths=paths)), None)
    context["commit_count"] = store.count_commits(at.commit, paths=paths)
    if not at.path:
        context["commits"] = store.log(at.commit, limit=5)
        default = browse.repository.default_branch
        if at.ref == default:
            context["index_status"] = _index_status(browse.repository)
        elif at.kind == "branch" and (
            head := next((r for r in browse.refs if r.kind == "branch" and r.name == default), None)
        ):
            context["ahead"], context["behind"] = store.ahead_behind(head.sha, at.commit)
            context["compare_url"] = _url("compare", browse, f"{default}...{at.ref}")
    return render(request, "repos/tree.html", context)


@login_required
def repository_blob(
    request: HttpRequest, slug: str, repo: str, ref: str, path: str
) -> HttpResponse:
    browse = _browse(request, slug, repo, _joined(ref, path))
    at, store = browse.at, browse.store
    item = store.entry(at.commit, at.path) if at.path else None
    if item is None or item.type != "blob":
        raise Http404("No such file.")
    blob = store.read_blob(item.sha, MAX_VIEW_BYTES)
    context = browse.context(
        lambda name: _url("blob", browse, name, at.path),
        page="blob",
        item=item,
        blob=blob,
        is_symlink=item.mode == "120000",
        last_commit=next(iter(store.log(at.commit, limit=1, paths=[at.path])), None),
    )
    if item.mode != "120000" and not is_binary(blob.data[:8192]):
        text = blob.data.decode("utf-8", "replace")
        try:
            lexer = get_lexer_for_filename(at.path, stripnl=False)
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
def repository_raw(request: HttpRequest, slug: str, repo: str, ref: str, path: str) -> HttpResponse:
    """A file's bytes as they are: text as plain text, anything else as a download."""
    browse = _browse(request, slug, repo, _joined(ref, path))
    item = browse.store.entry(browse.at.commit, browse.at.path) if browse.at.path else None
    if item is None or item.type != "blob" or item.mode == "120000":
        raise Http404("No such file.")
    blob = browse.store.read_blob(item.sha, MAX_RAW_BYTES)
    if blob.truncated:
        raise Http404("This file is too large to show raw; download the branch instead.")
    name = PurePosixPath(item.path).name
    binary = is_binary(blob.data)
    response = HttpResponse(
        blob.data,
        # Never a type a browser would run or render: the file comes from the repository.
        content_type="application/octet-stream" if binary else "text/plain; charset=utf-8",
    )
    disposition = "attachment" if binary else "inline"
    response["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(name)}"
    return response


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
def repository_commits(
    request: HttpRequest, slug: str, repo: str, ref: str = "", path: str = ""
) -> HttpResponse:
    """A branch's history, or a file's or folder's (``commits/<ref>/<path>``), 50 a page."""
    browse = _browse(request, slug, repo, _joined(ref, path))
    at, store = browse.at, browse.store
    page = _page_number(request)
    paths = [at.path] if at.path else []
    try:
        commits = store.log(at.commit, limit=51, offset=(page - 1) * 50, paths=paths)
        total = store.count_commits(at.commit, paths=paths)
    except GitStoreError:
        raise Http404("No such path.") from None
    return render(
        request,
        "repos/commits.html",
        browse.context(
            lambda name: _url("commits_path" if at.path else "commits_ref", browse, name, at.path),
            page="commits",
            commits=commits[:50],
            commit_total=total,
            page_number=page,
            has_next=len(commits) > 50,
        ),
    )


def _page_number(request: HttpRequest) -> int:
    try:
        return max(1, min(100_000, int(request.GET.get("page", "1"))))
    except ValueError:
        return 1


def _view_options(request: HttpRequest) -> tuple[str, int]:
    """The diff viewer's layout and context lines, from the query string."""
    view = "split" if request.GET.get("view") == "split" else "unified"
    try:
        context_lines = max(0, min(MAX_CONTEXT, int(request.GET.get("context", "3"))))
    except ValueError:
        context_lines = 3
    return view, context_lines


@login_required
def repository_commit(request: HttpRequest, slug: str, repo: str, ref: str) -> HttpResponse:
    """One commit: its message, author, committer and parents, and its diff from its first
    parent (the empty tree for a root commit), in the review's diff viewer."""
    browse = _browse(request, slug, repo, ref)
    if browse.at.path:
        raise Http404("No such commit.")
    info = browse.store.commit_info(browse.at.commit)
    view, context_lines = _view_options(request)
    diff = diff_view(
        repository=browse.repository,
        base=info.parents[0] if info.parents else EMPTY_TREE,
        head=info.sha,
        context_lines=context_lines,
    )
    body = info.message.strip().partition("\n")[2].strip()
    return render(
        request,
        "repos/commit.html",
        browse.context(
            lambda name: _tree_url(browse, name),
            page="commit",
            info=info,
            body=body,
            diff=diff,
            view=view,
            context_lines=context_lines,
            more_context=min(MAX_CONTEXT, context_lines + 20),
            branches_here=[r.name for r in browse.refs if r.sha == info.sha],
        ),
    )


@login_required
def repository_compare(request: HttpRequest, slug: str, repo: str, spec: str = "") -> HttpResponse:
    """Compare two refs as code hosts do: ``base...head`` shows what ``head`` changed since
    the two diverged (and its commits), ``base..head`` the direct diff between them."""
    membership = require_membership(request, slug)
    repository = repository_get(workspace=membership.workspace, slug=repo)
    if not spec:
        base, head = request.GET.get("base", ""), request.GET.get("head", "")
        if base and head:
            return redirect("repos:compare", slug=slug, repo=repo, spec=f"{base}...{head}")
    separator = "..." if "..." in spec else ".."
    base_name, _, head_name = spec.partition(separator)
    if spec and not (base_name and head_name):
        raise Http404("Name two refs: base...head.")
    refs = repository_refs(repository=repository)
    base = ref_path_find(repository=repository, refs=refs, rest=base_name) if spec else None
    head = ref_path_find(repository=repository, refs=refs, rest=head_name) if spec else None
    if (base and base.path) or (head and head.path):
        raise Http404("No such branch or commit.")
    at = head or ref_path_find(repository=repository, refs=refs, rest="")
    browse = _Browse(membership, repository, GitStore(repository.store_path), refs, at)
    base_ref = base.ref if base else repository.default_branch
    context = browse.context(
        lambda name: _url("compare", browse, f"{base_ref}...{name}"),
        page="compare",
        base=base,
        head=head,
        separator=separator,
        branch_names=[ref.name for ref in refs],
        base_choice=base_ref,
        head_choice=head.ref if head else _other_branch(refs, base_ref),
    )
    if base and head:
        view, context_lines = _view_options(request)
        store = browse.store
        start = store.merge_base(base.commit, head.commit) if separator == "..." else base.commit
        context.update(view=view, context_lines=context_lines, merge_base=start)
        context["swap_url"] = _url("compare", browse, f"{head.ref}{separator}{base.ref}")
        context["direct_url"] = _url("compare", browse, f"{base.ref}..{head.ref}")
        context["diverged_url"] = _url("compare", browse, f"{base.ref}...{head.ref}")
        context["more_context"] = min(MAX_CONTEXT, context_lines + 20)
        if start is not None and base.commit != head.commit:
            context["ahead"], context["behind"] = store.ahead_behind(base.commit, head.commit)
            context["commits"] = store.log(head.commit, limit=MAX_COMPARE_COMMITS, exclude=start)
            context["diff"] = diff_view(
                repository=repository, base=start, head=head.commit, context_lines=context_lines
            )
    return render(request, "repos/compare.html", context)


def _other_branch(refs: list[RefInfo], base: str) -> str:
    """The newest branch other than ``base``: what one most likely wants to compare."""
    return next((r.name for r in refs if r.kind == "branch" and r.name != base), base)


@login_required
def repository_branches(request: HttpRequest, slug: str, repo: str) -> HttpResponse:
    """Every branch with its head commit and how far it is from the default branch."""
    browse = _browse(request, slug, repo, "")
    query = request.GET.get("q", "").strip()[:200]
    default = browse.at
    sessions = refactor_branches(repository=browse.repository)
    rows = []
    for ref in browse.refs:
        if ref.kind != "branch" or (query and query.casefold() not in ref.name.casefold()):
            continue
        ahead = behind = None
        if ref.name != default.ref and len(rows) < MAX_BRANCHES_COUNTED:
            ahead, behind = browse.store.ahead_behind(default.commit, ref.sha)
        rows.append(
            {
                "ref": ref,
                "ahead": ahead,
                "behind": behind,
                "is_default": ref.name == default.ref,
                "session": sessions.get(ref.name),
                "compare_url": _url("compare", browse, f"{default.ref}...{ref.name}"),
            }
        )
    return render(
        request,
        "repos/branches.html",
        browse.context(
            lambda name: _tree_url(browse, name),
            page="branches",
            rows=rows,
            query=query,
            tags=[ref for ref in browse.refs if ref.kind == "tag"],
        ),
    )


@login_required
def repository_archive(
    request: HttpRequest, slug: str, repo: str, ref: str, fmt: str
) -> HttpResponse:
    browse = _browse(request, slug, repo, ref)
    if browse.at.path:
        raise Http404("No such branch or commit.")
    at = browse.at
    label = at.commit[:12] if at.kind == "commit" else re.sub(r"[^A-Za-z0-9._-]+", "-", at.ref)
    name = f"{browse.repository.slug}-{label}"
    response = StreamingHttpResponse(
        browse.store.archive(at.commit, fmt, prefix=f"{name}/"),
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
