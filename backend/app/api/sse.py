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

    # FastAPI reads the class default when it documents a route with this response class.
    media_type = "text/event-stream"

    def __init__(self, content: AsyncGenerator[bytes, None], status_code: int = 200) -> None:
        super().__init__(
            content, status_code=status_code, media_type=self.media_type, headers=SSE_HEADERS
        )
        self._generator = content

    async def stream_response(self, send: Send) -> None:
        async with aclosing(self._generator):
            await super().stream_response(send)
