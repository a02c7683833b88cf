"""Helpers that create rows directly and sign in through the real API."""

from __future__ import annotations

import socket

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
