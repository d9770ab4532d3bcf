"""Refusals that tell a socket's client more than a message."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError


class Refusal(ValidationError):
    """A service's refusal with its own error code and fields for the client.

    ``ActionConsumer`` sends it as ``{"type": "error", "code": code, "message", **fields}``
    (e.g. code "stale" with the state that made a decision stale); views show the message
    like any ``ValidationError``.
    """

    def __init__(self, message: str, *, code: str, **fields: Any) -> None:
        super().__init__(message, code=code)
        self.fields = fields
