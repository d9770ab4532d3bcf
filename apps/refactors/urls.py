from django.urls import path

from apps.refactors import views

app_name = "refactors"

_session = "w/<slug:slug>/refactors/<int:session_id>/"
_changeset = _session + "proposals/<int:changeset_id>/"

urlpatterns = [
    path("w/<slug:slug>/refactors/", views.refactor_index, name="index"),
    path("w/<slug:slug>/refactors/new/", views.refactor_new, name="new"),
    path("w/<slug:slug>/refactors/policy/", views.refactor_policy, name="policy"),
    path(_session, views.refactor_detail, name="detail"),
    path(_session + "regenerate/", views.refactor_regenerate, name="regenerate"),
    path(_changeset + "file/", views.changeset_file, name="file"),
    path(_changeset + "decide/", views.changeset_decide, name="decide"),
    path(_changeset + "comment/", views.changeset_comment, name="comment"),
    path(_changeset + "reply/", views.thread_reply, name="reply"),
    path(_changeset + "resolve/", views.thread_resolve, name="resolve"),
    path(_changeset + "reopen/", views.thread_reopen, name="reopen"),
    path(_changeset + "suggest/", views.suggestion_add, name="suggest"),
    path(_changeset + "suggestion/accept/", views.suggestion_accept, name="suggestion_accept"),
    path(_changeset + "suggestion/dismiss/", views.suggestion_dismiss, name="suggestion_dismiss"),
    path(_changeset + "review/", views.changeset_review, name="review"),
    path(_changeset + "reviews/", views.changeset_reviews, name="reviews"),
    path(_changeset + "apply/", views.changeset_apply, name="apply"),
    path(_changeset + "fix/", views.changeset_fix, name="fix"),
    path(_changeset + "edit/", views.changeset_edit, name="edit"),
    path(_changeset + "patch/", views.changeset_patch, name="patch"),
    path(_changeset + "archive/", views.changeset_archive, name="archive"),
    path(_session + "applies/<int:apply_id>/push/", views.apply_push, name="push"),
]
