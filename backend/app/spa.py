"""Serve the built SPA: hashed assets cached for a year, index.html for every app route."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

# Paths that belong to the backend: never answered with index.html.
RESERVED_PREFIXES = ("/api/", "/docs/")
RESERVED_PATHS = {"/api", "/health", "/docs", "/redoc", "/openapi.json"}
IMMUTABLE = "public, max-age=31536000, immutable"


def _is_reserved(path: str) -> bool:
    return path in RESERVED_PATHS or path.startswith(RESERVED_PREFIXES)


def mount_spa(app: FastAPI, dist: Path) -> bool:
    """Add the SPA routes when `dist/index.html` exists; False (nothing mounted) otherwise."""
    dist = dist.resolve()
    index = dist / "index.html"
    if not index.is_file():
        return False

    def index_response() -> Response:
        return FileResponse(index, headers={"Cache-Control": "no-cache"})

    @app.get("/{full_path:path}", include_in_schema=False)
    def spa(full_path: str, request: Request) -> Response:
        path = "/" + full_path
        if _is_reserved(path):
            raise HTTPException(404)
        candidate = (dist / full_path).resolve()
        if full_path and candidate.is_file() and candidate.is_relative_to(dist):
            cache = IMMUTABLE if full_path.startswith("assets/") else "no-cache"
            return FileResponse(candidate, headers={"Cache-Control": cache})
        if full_path.startswith("assets/"):
            raise HTTPException(404)  # a missing hashed asset is an error, not a page
        return index_response()

    return True
