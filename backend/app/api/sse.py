"""The response type of every streaming endpoint."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from starlette.responses import StreamingResponse
from starlette.types import Send

from app.services.chat_stream import SSE_HEADERS


class SSEResponse(StreamingResponse):
    """Server-Sent Events from an async generator that is always closed.

    Starlette iterates the body with a bare `async for`: when the client goes away while the
    generator waits at a `yield`, nothing closes it until garbage collection. Closing it here
    runs its `finally` at once: the upstream request is closed and an interrupted chat answer
    is saved before the request ends."""

    def __init__(self, content: AsyncGenerator[bytes, None]) -> None:
        super().__init__(content, media_type="text/event-stream", headers=SSE_HEADERS)
        self._generator = content

    async def stream_response(self, send: Send) -> None:
        async with aclosing(self._generator):
            await super().stream_response(send)
