from django.urls import path

from apps.workspaces import views

app_name = "workspaces"

urlpatterns = [
    path("", views.home, name="home"),
    path("w/new/", views.workspace_create, name="create"),
    path("w/<slug:slug>/", views.workspace_detail, name="detail"),
    path("w/<slug:slug>/members/", views.member_list, name="members"),
    path("w/<slug:slug>/members/invite/", views.invitation_create, name="invite"),
    path(
        "w/<slug:slug>/members/<int:membership_id>/role/",
        views.member_change_role,
        name="member_role",
    ),
    path(
        "w/<slug:slug>/members/<int:membership_id>/remove/",
        views.member_remove,
        name="member_remove",
    ),
    path(
        "w/<slug:slug>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("w/<slug:slug>/settings/", views.workspace_settings, name="settings"),
    path("w/<slug:slug>/settings/delete/", views.workspace_delete, name="delete"),
]
