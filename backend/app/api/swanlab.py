"""SwanLab experiment tracking: the server-wide configuration, its test, the local dashboard and
the projects in the local log folder. Changing the configuration and starting or stopping the
dashboard is for administrators; every signed-in user may read (the API key only masked)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.deps import get_current_user, require_admin
from app.api.routing import CommittingRoute
from app.schemas.swanlab import (
    SwanlabConfigPublic,
    SwanlabConfigUpdate,
    SwanlabProjects,
    SwanlabStatus,
    SwanlabTestResult,
)
from app.services import swanlab_service as service

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/training/swanlab",
    tags=["swanlab"],
    dependencies=[Depends(get_current_user)],
)


@router.get("/config", response_model=SwanlabConfigPublic)
def get_config() -> SwanlabConfigPublic:
    """The SwanLab configuration (the API key only as a mask)."""
    return service.get_config()


@router.put("/config", response_model=SwanlabConfigPublic, dependencies=[Depends(require_admin)])
def update_config(data: SwanlabConfigUpdate) -> SwanlabConfigPublic:
    """Change the SwanLab configuration (administrators; omitted fields are kept)."""
    return service.update_config(data)


@router.post("/test", response_model=SwanlabTestResult)
def test_config() -> SwanlabTestResult:
    """Check the stored configuration: package and log folder (local), sign-in (cloud)."""
    return service.test_config()


@router.get("/status", response_model=SwanlabStatus)
async def dashboard_status() -> SwanlabStatus:
    """Whether the local dashboard runs and answers, with its URL."""
    return await service.dashboard_status()


@router.post("/start", response_model=SwanlabStatus, dependencies=[Depends(require_admin)])
async def start_dashboard() -> SwanlabStatus:
    """Start the local dashboard (`swanlab watch`) on 127.0.0.1 (administrators)."""
    return await service.start_dashboard()


@router.post("/stop", response_model=SwanlabStatus, dependencies=[Depends(require_admin)])
async def stop_dashboard() -> SwanlabStatus:
    """Stop the local dashboard (administrators)."""
    return await service.stop_dashboard()


@router.get("/projects", response_model=SwanlabProjects)
def list_projects() -> SwanlabProjects:
    """The projects and runs in the configured local log folder."""
    return service.list_projects()
