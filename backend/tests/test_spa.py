"""The backend serves the built SPA with history fallback and the right cache headers."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.config import settings
from app.factory import create_app
from app.spa import mount_spa


@pytest.fixture
def spa_client(tmp_path: Path, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><div id=app></div>")
    (dist / "assets" / "index-abc123.js").write_text("console.log(1)")
    (dist / "favicon.svg").write_text("<svg/>")
    (tmp_path / "secret.txt").write_text("outside")
    monkeypatch.setattr(settings, "FRONTEND_DIST", dist)
    return TestClient(create_app())


def test_index_and_history_fallback(spa_client: TestClient) -> None:
    for path in ("/", "/login", "/admin", "/some/deep/route?x=1"):
        response = spa_client.get(path)
        assert response.status_code == 200, path
        assert "<div id=app>" in response.text
        assert response.headers["cache-control"] == "no-cache"


def test_hashed_assets_cached_long(spa_client: TestClient) -> None:
    response = spa_client.get("/assets/index-abc123.js")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert spa_client.get("/assets/missing.js").status_code == 404
    assert spa_client.get("/favicon.svg").headers["cache-control"] == "no-cache"


def test_backend_paths_are_not_the_spa(spa_client: TestClient) -> None:
    assert spa_client.get("/health").json()["status"] == "ok"
    assert "swagger" in spa_client.get("/docs").text.lower()
    assert "paths" in spa_client.get("/openapi.json").json()
    missing = spa_client.get("/api/no-such-endpoint")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert spa_client.get("/api").status_code == 404


def test_no_escape_from_dist(spa_client: TestClient) -> None:
    response = spa_client.get("/..%2Fsecret.txt")
    assert "outside" not in response.text


def test_nothing_mounted_without_a_build(tmp_path: Path) -> None:
    application = create_app()
    assert mount_spa(application, tmp_path / "nowhere") is False
