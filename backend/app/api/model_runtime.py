"""Model runtimes: models served by the platform itself (vLLM on GPU, `llamafactory-cli api` on
CPU). Mounted after /model/tests and /model/upload-image, which its `/{runtime_id}` would
otherwise swallow."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute
from app.schemas.model_runtime import (
    RuntimeCreate,
    RuntimePublic,
    RuntimeStatus,
    RuntimeUpdate,
    ServingEngineInfo,
)
from app.schemas.training import JobLogs
from app.services import runtime_service as service

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/model",
    tags=["model runtime"],
    dependencies=[Depends(get_current_user)],
)


@router.get("/engines", response_model=list[ServingEngineInfo])
def serving_engines() -> list[ServingEngineInfo]:
    """Which serving engines run on this host, and what the others miss."""
    return service.engines()


@router.get("", response_model=list[RuntimePublic])
def list_runtimes(
    user: CurrentUser,
    db: SessionDep,
    status_: Annotated[RuntimeStatus | None, Query(alias="status")] = None,
) -> list[RuntimePublic]:
    """Own runtimes and every ready one (admins: all)."""
    return service.list_runtimes(db, user, status=status_)


@router.post("", response_model=RuntimePublic, status_code=status.HTTP_201_CREATED)
def create_runtime(data: RuntimeCreate, user: CurrentUser, db: SessionDep) -> RuntimePublic:
    """Register a model to serve (a path, a hub id or a training job's artifact)."""
    return service.create_runtime(db, user, data)


@router.get("/{runtime_id}", response_model=RuntimePublic)
def get_runtime(runtime_id: int, user: CurrentUser, db: SessionDep) -> RuntimePublic:
    """One runtime (own, or ready)."""
    return service.get_runtime(db, user, runtime_id)


@router.patch("/{runtime_id}", response_model=RuntimePublic)
def update_runtime(
    runtime_id: int, data: RuntimeUpdate, user: CurrentUser, db: SessionDep
) -> RuntimePublic:
    """Change a runtime's description, or its serving settings while it is not loaded."""
    return service.update_runtime(db, user, runtime_id, data)


@router.delete("/{runtime_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_runtime(runtime_id: int, user: CurrentUser, db: SessionDep) -> Response:
    """Delete a runtime; a loaded one is unloaded first."""
    await service.delete_runtime(db, user, runtime_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{runtime_id}/load", response_model=RuntimePublic)
def load_runtime(runtime_id: int, user: CurrentUser, db: SessionDep) -> RuntimePublic:
    """Start serving the model (loading -> ready, or failed with the log tail)."""
    return service.load_runtime(db, user, runtime_id)


@router.post("/{runtime_id}/unload", response_model=RuntimePublic)
async def unload_runtime(runtime_id: int, user: CurrentUser, db: SessionDep) -> RuntimePublic:
    """Stop serving: the port is freed and the model config disabled."""
    return await service.unload_runtime(db, user, runtime_id)


@router.get("/{runtime_id}/logs", response_model=JobLogs)
def runtime_logs(
    runtime_id: int,
    user: CurrentUser,
    db: SessionDep,
    offset: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> JobLogs:
    """The engine's log from byte `offset` (without it: the last 200 lines)."""
    return service.logs(db, user, runtime_id, offset)
