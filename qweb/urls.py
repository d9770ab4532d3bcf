from django.urls import include, path

from apps.workspaces import views as workspace_views
from qweb.views import healthz

urlpatterns = [
    path("accounts/", include("apps.accounts.urls")),
    path("invitations/<str:token>/", workspace_views.invitation_accept, name="invitation_accept"),
    path("healthz", healthz, name="healthz"),
    path("", include("apps.repos.urls")),
    path("", include("apps.chat.urls")),
    path("", include("apps.refactors.urls")),
    path("", include("apps.workspaces.urls")),
]
