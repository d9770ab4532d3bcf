"""Every websocket route, gathered from the apps; any other path is closed 4404."""

from django.urls import re_path

from apps.chat.routing import websocket_urlpatterns as chat_routes
from apps.generation.routing import websocket_urlpatterns as generation_routes
from apps.refactors.routing import websocket_urlpatterns as refactor_routes
from apps.workspaces.routing import websocket_urlpatterns as workspace_routes
from qweb.consumers import NotFoundConsumer

websocket_urlpatterns = [
    *workspace_routes,
    *generation_routes,
    *chat_routes,
    *refactor_routes,
    re_path(r"", NotFoundConsumer.as_asgi()),
]
