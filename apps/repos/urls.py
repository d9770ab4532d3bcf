from django.urls import path, register_converter

from apps.repos import views


class FormatConverter:
    regex = "zip|tar.gz"

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
    path("w/<slug:slug>/r/<slug:repo>/tree/<str:ref>/", views.repository_tree, name="tree_ref"),
    path(
        "w/<slug:slug>/r/<slug:repo>/tree/<str:ref>/<path:path>",
        views.repository_tree,
        name="tree_path",
    ),
    path(
        "w/<slug:slug>/r/<slug:repo>/blob/<str:ref>/<path:path>", views.repository_blob, name="blob"
    ),
    path("w/<slug:slug>/r/<slug:repo>/search/", views.repository_search, name="search"),
    path(
        "w/<slug:slug>/r/<slug:repo>/index-status/",
        views.repository_index_status,
        name="index_status",
    ),
    path("w/<slug:slug>/r/<slug:repo>/commits/", views.repository_commits, name="commits"),
    path(
        "w/<slug:slug>/r/<slug:repo>/archive/<str:ref>.<archive_format:fmt>",
        views.repository_archive,
        name="archive",
    ),
    path("w/<slug:slug>/r/<slug:repo>/sync/", views.repository_sync, name="sync"),
    path("w/<slug:slug>/r/<slug:repo>/upload/", views.repository_upload_version, name="upload"),
    path("w/<slug:slug>/r/<slug:repo>/delete/", views.repository_delete, name="delete"),
]
