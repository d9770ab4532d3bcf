"""The one way server code sends websocket events: after commit, through the channel layer.

The database is the truth and the channel layer only delivers, so events are sent once
the transaction that made them true has committed; a rolled-back change announces nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def broadcast(group: str, event: Mapping[str, Any]) -> None:
    """Send ``event`` to every socket in ``group`` once the current transaction commits."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, dict(event))
        except Exception:
            # Delivery is best effort: pages re-read the database on reconnect.
            logger.exception("Could not broadcast %s to %s", event.get("type"), group)

    transaction.on_commit(send)
