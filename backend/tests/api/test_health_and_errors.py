"""Health endpoint, request ids and the one error format."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app import __version__
from app.database import build_engine
from app.factory import create_app
from app.models import User
from app.services import system_service


def test_health_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "database": "ok"}


def test_health_503_when_database_fails(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real engine pointed at a port where no database listens.
    broken = build_engine("postgresql+psycopg://nobody@127.0.0.1:9/none")
    monkeypatch.setattr(system_service, "SessionLocal", sessionmaker(bind=broken))
    try:
        response = client.get("/health")
    finally:
        broken.dispose()
    assert response.status_code == 503
    assert response.json() == {"status": "error", "version": __version__, "database": "error"}


def test_request_id_generated_and_echoed(client: TestClient) -> None:
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) == 32
    echoed = client.get("/health", headers={"X-Request-ID": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    unsafe = client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"


def test_unknown_route_and_method(client: TestClient) -> None:
    missing = client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not found", "code": "not_found"}
    wrong_method = client.put("/health")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["code"] == "method_not_allowed"


def test_validation_error_shape(client: TestClient) -> None:
    response = client.post("/api/auth/register", json={"email": 5, "password": "secret-value-1"})
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_error"
    assert isinstance(body["detail"], list)
    assert {"type", "loc", "msg"} <= set(body["detail"][0])
    assert "secret-value-1" not in response.text  # inputs are not echoed


def test_json_body_over_1_mib_is_413(client: TestClient, db: Session) -> None:
    padding = "x" * (1024 * 1024)
    response = client.post(
        "/api/auth/register",
        json={"email": "big@example.com", "nickname": "big", "password": padding},
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert db.scalar(select(User).where(User.email == "big@example.com")) is None
    # Just under the limit is parsed normally (and rejected for its content).
    small = client.post("/api/auth/login", json={"username": "u", "password": "p" * 2000})
    assert small.status_code == 422


def test_unhandled_error_is_generic_500_with_request_id(caplog: pytest.LogCaptureFixture) -> None:
    application = create_app()

    @application.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    error_logger = logging.getLogger("app.exceptions")
    error_logger.addHandler(caplog.handler)
    try:
        with TestClient(application, raise_server_exceptions=False) as test_client:
            response = test_client.get("/boom", headers={"X-Request-ID": "req-500"})
    finally:
        error_logger.removeHandler(caplog.handler)
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error", "code": "internal_error"}
    assert "secret internals" not in response.text
    assert response.headers["x-request-id"] == "req-500"
    assert any("req-500" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)


def test_cors_allows_vite_dev_origin_with_credentials(client: TestClient) -> None:
    response = client.options(
        "/api/auth/login",
        headers={"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert response.headers["access-control-allow-credentials"] == "true"
    other = client.options(
        "/api/auth/login",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in other.headers


def test_openapi_documents_both_login_bodies(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/api/auth/login"]["post"]["requestBody"]["content"]
    assert {"application/json", "application/x-www-form-urlencoded"} <= set(content)
    schemes = spec["components"]["securitySchemes"]
    assert any(
        s.get("flows", {}).get("password", {}).get("tokenUrl") == "/api/auth/login"
        for s in schemes.values()
    )
    # Every route has a summary line for /docs.
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            assert operation.get("description"), f"{method.upper()} {path} has no docstring"


def test_chunked_body_over_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "u", "password": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    response = client.post(
        "/api/auth/login", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_multipart_login_is_not_a_way_around_the_limit(client: TestClient) -> None:
    response = client.post(
        "/api/auth/login",
        files={"username": (None, "u"), "password": (None, "x" * (2 * 1024 * 1024))},
    )
    assert response.status_code == 413  # multipart is limited too, except on upload routes
