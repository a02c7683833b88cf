"""Helpers that create rows directly and sign in through the real API."""

from __future__ import annotations

import json
import socket
from typing import Any

import anyio
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import User
from app.utils.security import hash_password

DEFAULT_PASSWORD = "Sturdy-Passw0rd!"


def make_user(
    db: Session,
    email: str,
    nickname: str,
    *,
    password: str = DEFAULT_PASSWORD,
    role: str = "user",
    is_active: bool = True,
    must_change_password: bool = False,
    password_hash: str | None = None,
) -> User:
    user = User(
        email=email.lower(),
        nickname=nickname,
        nickname_key=nickname.lower(),
        password_hash=password_hash or hash_password(password),
        role=role,
        is_active=is_active,
        must_change_password=must_change_password,
    )
    db.add(user)
    db.commit()
    return user


def login(client: TestClient, username: str, password: str = DEFAULT_PASSWORD) -> dict[str, object]:
    response = client.post("/api/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def auth_headers(
    client: TestClient, username: str, password: str = DEFAULT_PASSWORD
) -> dict[str, str]:
    return {"Authorization": f"Bearer {login(client, username, password)['access_token']}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def asgi_chunked_post(
    app: FastAPI, path: str, token_header: str, chunks: list[bytes], content_type: str
) -> tuple[int, dict[str, Any], int]:
    """Drive the app with a body that arrives chunk by chunk (no Content-Length), as a real
    server delivers it; returns status, JSON body and how many chunks the app pulled."""
    pulled = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": True}
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", token_header.encode()),
            (b"content-type", content_type.encode()),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 12345),
        "server": ("127.0.0.1", 80),
    }

    async def run() -> None:
        await app(scope, receive, send)

    anyio.run(run)
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(payload), pulled
