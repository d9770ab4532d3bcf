from django.urls import path

from apps.chat import views

app_name = "chat"

urlpatterns = [
    path("w/<slug:slug>/chat/", views.conversation_index, name="index"),
    path("w/<slug:slug>/chat/new/", views.conversation_new, name="new"),
    path("w/<slug:slug>/chat/<int:conversation_id>/", views.conversation_detail, name="detail"),
    path(
        "w/<slug:slug>/chat/<int:conversation_id>/messages/",
        views.conversation_post,
        name="post",
    ),
    path(
        "w/<slug:slug>/chat/<int:conversation_id>/messages/<int:message_id>/",
        views.message_fragment,
        name="message",
    ),
    path(
        "w/<slug:slug>/chat/<int:conversation_id>/thread/",
        views.conversation_thread_fragment,
        name="thread",
    ),
    path(
        "w/<slug:slug>/chat/<int:conversation_id>/regenerate/",
        views.message_regenerate,
        name="regenerate",
    ),
    path("w/<slug:slug>/chat/<int:conversation_id>/edit/", views.message_edit, name="edit"),
    path("w/<slug:slug>/chat/<int:conversation_id>/stop/", views.conversation_stop, name="stop"),
    path(
        "w/<slug:slug>/chat/<int:conversation_id>/rename/",
        views.conversation_rename,
        name="rename",
    ),
    path(
        "w/<slug:slug>/chat/<int:conversation_id>/delete/",
        views.conversation_delete,
        name="delete",
    ),
    path("w/<slug:slug>/chat/<int:conversation_id>/pins/", views.conversation_pins, name="pins"),
    path(
        "w/<slug:slug>/chat/<int:conversation_id>/pins/panel/",
        views.conversation_pins_panel,
        name="pins_panel",
    ),
    path("w/<slug:slug>/chat/<int:conversation_id>/paths/", views.conversation_paths, name="paths"),
]
