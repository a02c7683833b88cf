"""ASGI middleware that must answer before the app reads a request."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.request_context import REQUEST_ID_HEADER, current_request_id


class BodyLimitMiddleware:
    """Limit request bodies to `max_bytes`, answering 413.

    A declared Content-Length over the limit is refused before the app runs; a body sent
    without one is counted as it is read, and the overflow raises an HTTPException that the
    app's handlers render in the usual {"detail", "code"} shape. Only the paths matching
    `exempt` (upload endpoints, which stream to disk under their own limits) are let through.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = [re.compile(pattern) for pattern in exempt]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if any(pattern.fullmatch(scope["path"]) for pattern in self.exempt):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > self.max_bytes:
            await _send_413(send, self.max_bytes)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(
                        413, f"Request body too large (limit {self.max_bytes} bytes)"
                    )
            return message

        await self.app(scope, counting_receive, send)


async def _send_413(send: Send, limit: int) -> None:
    body = json.dumps(
        {"detail": f"Request body too large (limit {limit} bytes)", "code": "payload_too_large"}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    request_id = current_request_id()
    if request_id:
        headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
