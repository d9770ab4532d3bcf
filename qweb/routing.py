"""Every websocket route, gathered from the apps."""

from apps.workspaces.routing import websocket_urlpatterns as workspace_routes

websocket_urlpatterns = [*workspace_routes]
