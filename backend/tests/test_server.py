"""The real thing: uvicorn serving the app on 127.0.0.1, as `make run` does."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.factories import free_port

BACKEND = Path(__file__).resolve().parents[1]
UVICORN = Path(sys.executable).with_name("uvicorn")


def _server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DATA_DIR")}
    env.update(
        MODELTRAIN_ENV_FILE="",
        DATABASE_URL=f"sqlite:///{tmp_path / 'server.db'}",
        DATA_DIR=str(tmp_path / "data"),
        LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [str(UVICORN), "main:app", "--host", "127.0.0.1", "--port", str(port)],
        cwd=BACKEND,
        env=_server_env(tmp_path),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError((tmp_path / "server.log").read_text())
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    "server did not start:\n" + (tmp_path / "server.log").read_text()
                )
            time.sleep(0.2)
        yield base, tmp_path
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def test_server_serves_health_docs_and_accounts(server: tuple[str, Path]) -> None:
    base, tmp_path = server
    health = httpx.get(f"{base}/health")
    assert health.json()["database"] == "ok"
    assert health.headers["x-request-id"]
    docs = httpx.get(f"{base}/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "/api/auth/login" in httpx.get(f"{base}/openapi.json").json()["paths"]

    # Start-up applied the migrations and generated the secret key (mode 0600).
    with sqlite3.connect(tmp_path / "server.db") as conn:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        mode = conn.execute("PRAGMA journal_mode").fetchone()
    assert version is not None and mode == ("wal",)
    key_file = tmp_path / "data" / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    log = (tmp_path / "server.log").read_text()
    assert key_file.read_text().strip() not in log  # the secret is never logged

    # The default admin over real HTTP, cookie included.
    with httpx.Client(base_url=base) as client:
        assert client.get("/api/auth/login-hints").json() == {"default_admin": True}
        login = client.post("/api/auth/login", json={"username": "admin", "password": "admin"})
        assert login.status_code == 200
        assert login.json()["must_change_password"] is True
        assert "refresh_token" in client.cookies
        assert client.post("/api/auth/refresh").status_code == 200
    assert "WARNING" in log and "default admin" in log


def test_short_secret_key_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(UVICORN), "main:app", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=BACKEND,
        env=_server_env(tmp_path, SECRET_KEY="short-key"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "SECRET_KEY must be at least 32 characters" in result.stdout + result.stderr


def test_many_concurrent_requests_do_not_deadlock(server: tuple[str, Path]) -> None:
    """More requests in flight than the pool has connections (5 + 10) and the worker pool has
    threads (40). A request holding a connection while it waits for a thread deadlocks the
    server once the waiting ones take every thread: checkouts then time out (500 after 30 s)."""
    import asyncio

    base, _ = server
    with httpx.Client(base_url=base, timeout=10) as client:
        account = {"email": "busy@example.com", "nickname": "busy", "password": "Busy-Server-2026"}
        assert client.post("/api/auth/register", json=account).status_code == 201
        token = client.post(
            "/api/auth/login", json={"username": "busy", "password": account["password"]}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        session_id = client.post("/api/chat/sessions", json={}, headers=headers).json()["id"]

    async def burst(count: int) -> list[int]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(
            base_url=base, headers=headers, timeout=25, limits=limits
        ) as http:
            opening = asyncio.Semaphore(8)  # connect gently; then every request at once

            async def warm() -> None:
                async with opening:
                    await http.get("/health")

            await asyncio.gather(*(warm() for _ in range(count)))

            async def one(index: int) -> int:
                try:
                    if index % 2:
                        response = await http.post(
                            "/api/chat/messages",
                            json={"session_id": session_id, "role": "user", "content": "x"},
                        )
                    else:
                        response = await http.get(f"/api/chat/sessions/{session_id}")
                except httpx.TimeoutException:
                    return 0
                return response.status_code

            return await asyncio.gather(*(one(i) for i in range(count * 3)))

    codes = asyncio.run(burst(100))
    assert sorted(set(codes)) == [200, 201], {code: codes.count(code) for code in set(codes)}
