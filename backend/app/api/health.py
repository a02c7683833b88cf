"""Liveness and database health for deployments and load balancers."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app import __version__
from app.api.routing import CommittingRoute
from app.services import system_service

router = APIRouter(route_class=CommittingRoute, tags=["system"])


@router.get("/health")
async def health() -> JSONResponse:
    """200 when the service and its database answer; 503 when the database does not."""
    # One hop to a worker thread (not three, as a session dependency would take): probes
    # keep answering quickly while the server is busy.
    ok = await run_in_threadpool(system_service.database_ok)
    return JSONResponse(
        {
            "status": "ok" if ok else "error",
            "version": __version__,
            "database": "ok" if ok else "error",
        },
        status_code=200 if ok else 503,
        headers={"Cache-Control": "no-store"},
    )
