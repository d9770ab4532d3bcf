"""ASGI entry point for Daphne: HTTP through Django, websockets through Channels.

Websockets pass the same-origin check first (scheme, host and port, like Django's CSRF
check: a page on another site or port cannot open a socket with the user's cookies), then
the session/auth middleware.

Importing this module starts no thread: the application starts the embedded background
work itself, once, when it begins to serve (see ``BackgroundWork``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from django.core.asgi import get_asgi_application

if TYPE_CHECKING:
    from asgiref.typing import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope

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


def embedded_work_start() -> None:
    """Start the task runner and the inference worker on threads of this process, if it is
    the embedded setup (``QWEB_EMBEDDED_WORKER``)."""
    if not settings.QWEB_EMBEDDED_WORKER:
        return
    start_embedded_runner()
    start_embedded_worker()


class BackgroundWork:
    """Wraps an ASGI application and starts the process's background work once, before
    the first thing it serves.

    A server that speaks the lifespan protocol (uvicorn) starts it at ``lifespan.startup``.
    Daphne 4 sends no lifespan scope, so there the first connection starts it: the health
    check or the first page, before any socket can follow or post a job. ``start()`` is the
    explicit call; it is idempotent, whichever of these comes first.
    """

    def __init__(self, app: ASGI3Application, start: Callable[[], None]) -> None:
        self.app = app
        self._start = start
        self._started = False
        self._lock = threading.Lock()

    def start(self) -> bool:
        """Start the background work unless it was; True when this call started it."""
        with self._lock:
            if self._started:
                return False
            # Marked before starting: a start that fails is not retried on every request,
            # which could start half of the work twice.
            self._started = True
        self._start()
        return True

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        self.start()
        await self.app(scope, receive, send)

    async def _lifespan(self, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    self.start()
                except Exception as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                # The background threads are daemons: they end with the process.
                await send({"type": "lifespan.shutdown.complete"})
                return


def build_application() -> BackgroundWork:
    """qweb's ASGI application; refuses (``ImproperlyConfigured``) if prompts can't be sized."""
    # Pages size prompts for the served model: a web process that cannot learn a remote
    # model's window refuses to start, naming the variables, rather than guess it.
    context_window_check()
    router = ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
    return BackgroundWork(router, start=embedded_work_start)


application = build_application()
