from django.urls import path, register_converter

from apps.repos import views


class FormatConverter:
    regex = r"zip|tar\.gz"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(FormatConverter, "archive_format")

app_name = "repos"

urlpatterns = [
    path("w/<slug:slug>/repos/", views.repository_index, name="index"),
    path("w/<slug:slug>/repos/new/", views.repository_new, name="new"),
    path("w/<slug:slug>/repos/imports/<int:task_id>/", views.repository_task, name="task"),
    path("w/<slug:slug>/r/<slug:repo>/", views.repository_tree, name="tree"),
    # Branch names hold slashes (qweb/refactor-2): every route takes "<ref>/<path>" as a
    # whole and the view finds the longest leading ref, so (ref, path) may split anywhere.
    path("w/<slug:slug>/r/<slug:repo>/tree/<path:ref>/", views.repository_tree, name="tree_ref"),
    path(
        "w/<slug:slug>/r/<slug:repo>/tree/<path:ref>/<path:path>",
        views.repository_tree,
        name="tree_path",
    ),
    path(
        "w/<slug:slug>/r/<slug:repo>/blob/<path:ref>/<path:path>",
        views.repository_blob,
        name="blob",
    ),
    path(
        "w/<slug:slug>/r/<slug:repo>/raw/<path:ref>/<path:path>",
        views.repository_raw,
        name="raw",
    ),
    path("w/<slug:slug>/r/<slug:repo>/search/", views.repository_search, name="search"),
    path(
        "w/<slug:slug>/r/<slug:repo>/index-status/",
        views.repository_index_status,
        name="index_status",
    ),
    path("w/<slug:slug>/r/<slug:repo>/commits/", views.repository_commits, name="commits"),
    path(
        "w/<slug:slug>/r/<slug:repo>/commits/<path:ref>/",
        views.repository_commits,
        name="commits_ref",
    ),
    path(
        "w/<slug:slug>/r/<slug:repo>/commits/<path:ref>/<path:path>",
        views.repository_commits,
        name="commits_path",
    ),
    path("w/<slug:slug>/r/<slug:repo>/commit/<path:ref>/", views.repository_commit, name="commit"),
    path("w/<slug:slug>/r/<slug:repo>/branches/", views.repository_branches, name="branches"),
    path("w/<slug:slug>/r/<slug:repo>/compare/", views.repository_compare, name="compare_pick"),
    path(
        "w/<slug:slug>/r/<slug:repo>/compare/<path:spec>/",
        views.repository_compare,
        name="compare",
    ),
    path(
        "w/<slug:slug>/r/<slug:repo>/archive/<path:ref>.<archive_format:fmt>",
        views.repository_archive,
        name="archive",
    ),
    path("w/<slug:slug>/r/<slug:repo>/sync/", views.repository_sync, name="sync"),
    path("w/<slug:slug>/r/<slug:repo>/upload/", views.repository_upload_version, name="upload"),
    path("w/<slug:slug>/r/<slug:repo>/delete/", views.repository_delete, name="delete"),
]
