"""The base of qweb's websocket consumers: JSON in and out, malformed frames answered."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

# No frame qweb expects comes near this (a chat question has at most 100,000 characters,
# under 700,000 even JSON-escaped); bigger ones get an error without being parsed.
MAX_FRAME_CHARS = 1024 * 1024


class JsonConsumer(AsyncJsonWebsocketConsumer):
    """Binary frames and invalid JSON reach ``receive_json`` as ``None`` instead of crashing;
    oversized frames are refused without being parsed."""

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if text_data is not None and len(text_data) > MAX_FRAME_CHARS:
            await self.send_json(
                {
                    "type": "error",
                    "code": "too_large",
                    "message": f"Frames are limited to {MAX_FRAME_CHARS:,} characters.",
                }
            )
            return
        content = await self.decode_json(text_data) if text_data else None
        await self.receive_json(content, **kwargs)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        try:
            return await super().decode_json(text_data)
        except ValueError:
            return None
