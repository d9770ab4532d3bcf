"""Middleware of qweb's own."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from qweb.lib.gitstore import GitStoreError

logger = logging.getLogger(__name__)

# Not 500: the server is fine, one repository's store is not; the page says what git refused.
GIT_FAILURE_STATUS = 503


class GitFailureMiddleware:
    """A git failure that reaches a view's caller is shown with git's reason and logged.

    The safety net behind the services, which refuse with a ``ValidationError`` themselves:
    a page that reads a damaged store still answers with a message (an htmx request gets
    the one line as plain text, which the page shows as a toast), never a bare server error.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, GitStoreError):
            return None
        logger.error(
            "git failed on %s %s: %s",
            request.method,
            request.path,
            exception.message,
            exc_info=exception,
        )
        message = f"The repository's git store failed: {exception.message}"
        if getattr(request, "htmx", False):
            return HttpResponse(
                message, status=GIT_FAILURE_STATUS, content_type="text/plain; charset=utf-8"
            )
        return render(request, "git_error.html", {"message": message}, status=GIT_FAILURE_STATUS)
