"""Websocket origin check: scheme, host and port, as Django's CSRF check does for forms.

A socket is accepted only from a page of qweb itself — the ``Origin`` header equals the
request's own origin (its scheme, and its ``Host`` validated against ``ALLOWED_HOSTS``,
port included) — or from an origin listed in ``QWEB_CSRF_TRUSTED_ORIGINS`` (which may
use ``*.`` for subdomains, as Django allows). Channels' ``AllowedHostsOriginValidator``
compares host names only, so a page on any port of an allowed host (another service on
``127.0.0.1:9999``) could open sockets with the user's cookies.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    values = [value for key, value in scope.get("headers", ()) if key.lower() == name]
    if len(values) != 1:
        return None  # missing, or sent twice: nothing to trust
    return values[0].decode("latin-1").strip()


def _request_scheme(scope: dict[str, Any]) -> str:
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        # Django names it as a WSGI META key: HTTP_X_FORWARDED_PROTO → x-forwarded-proto.
        meta_name, secure_value = proxy_header
        header = meta_name.removeprefix("HTTP_").replace("_", "-").lower()
        forwarded = _header(scope, header.encode())
        if forwarded is not None:
            return "https" if forwarded.split(",")[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in {"wss", "https"} else "http"


def _request_host(scope: dict[str, Any]) -> str | None:
    host = None
    if getattr(settings, "USE_X_FORWARDED_HOST", False):
        forwarded = _header(scope, b"x-forwarded-host")
        host = forwarded.split(",")[0].strip() if forwarded else None
    host = host or _header(scope, b"host")
    if not host:
        return None
    domain, _port = split_domain_port(host)
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # Django's own default in debug
    return host if domain and validate_host(domain, allowed) else None


def _trusted(origin: str) -> bool:
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in [entry for entry in trusted if "*" not in entry]:
        return True
    parsed = urlsplit(origin)
    for entry in trusted:
        if "*" not in entry:
            continue
        entry_parsed = urlsplit(entry)
        if entry_parsed.scheme == parsed.scheme and is_same_domain(
            parsed.netloc, entry_parsed.netloc[entry_parsed.netloc.index("*") + 1 :]
        ):
            return True
    return False


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether a websocket handshake comes from a page qweb serves (or trusts)."""
    origin = _header(scope, b"origin")
    if not origin or origin == "null":
        return False
    host = _request_host(scope)
    if host is None:
        return False
    if origin == f"{_request_scheme(scope)}://{host}":
        return True
    return _trusted(origin)


class SameOriginValidator:
    """ASGI middleware: websockets from any other origin are refused at the handshake."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
