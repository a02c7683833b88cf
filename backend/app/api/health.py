"""Liveness and database health for deployments and load balancers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app import __version__
from app.api.deps import SessionDep
from app.services import system_service

router = APIRouter(tags=["system"])


@router.get("/health")
def health(db: SessionDep) -> JSONResponse:
    """200 when the service and its database answer; 503 when the database does not."""
    ok = system_service.database_ok(db)
    return JSONResponse(
        {
            "status": "ok" if ok else "error",
            "version": __version__,
            "database": "ok" if ok else "error",
        },
        status_code=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )
