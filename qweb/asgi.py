"""ASGI entry point for Daphne: HTTP through Django, websockets through Channels.

Websockets pass the same-origin check first (scheme, host and port, like Django's CSRF
check: a page on another site or port cannot open a socket with the user's cookies), then
the session/auth middleware.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qweb.settings")
# Django must be set up before importing consumers (they import models).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from apps.generation.backends import context_window_check  # noqa: E402
from apps.generation.worker import start_embedded_worker  # noqa: E402
from apps.ops.runner import start_embedded_runner  # noqa: E402
from qweb.origins import SameOriginValidator  # noqa: E402
from qweb.routing import websocket_urlpatterns  # noqa: E402

# Pages size prompts for the served model: a web process that cannot learn a remote model's
# window refuses to start, naming the variables, rather than guess it.
context_window_check()

if settings.QWEB_EMBEDDED_WORKER:
    # One process does everything: background tasks and the model on threads of their own.
    start_embedded_runner()
    start_embedded_worker()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
