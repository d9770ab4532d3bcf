from django.urls import path

from apps.refactors.consumers import RefactorConsumer

websocket_urlpatterns = [
    path("ws/refactors/<int:session_id>/", RefactorConsumer.as_asgi()),
]
