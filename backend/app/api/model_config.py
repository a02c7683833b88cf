"""The model config center: team-shared provider configs (any signed-in user)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute
from app.schemas.model_config import (
    ConnectionTest,
    Endpoint,
    ModelConfigCreate,
    ModelConfigPublic,
    ModelConfigUpdate,
    ProviderInfo,
    ProviderKey,
    ProviderModels,
    RefreshModelsRequest,
)
from app.services import model_config_service as service

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/model-config",
    tags=["model-config"],
    dependencies=[Depends(get_current_user)],
)

# Fixed paths come before /{config_id}: Starlette matches in order, and "providers" would
# otherwise reach /{config_id} and fail its int validation.


@router.get("/providers", response_model=list[ProviderInfo])
def providers() -> list[ProviderInfo]:
    """The provider registry: display names, default endpoints, key and top_k support."""
    return service.list_providers()


@router.get("/provider-models", response_model=ProviderModels)
def provider_models(
    db: SessionDep,
    provider: ProviderKey,
    endpoint: Annotated[Endpoint, Query(max_length=1000)] = None,
) -> ProviderModels:
    """The model list fetched last time for a provider endpoint (default endpoint if omitted)."""
    return service.provider_models(db, provider, endpoint)


# The provider calls below are async routes: they wait on the network without holding a
# worker thread, and the service releases the request's DB connection before that wait.


@router.post("/refresh-models", response_model=ProviderModels)
async def refresh_models(data: RefreshModelsRequest, db: SessionDep) -> ProviderModels:
    """Fetch a provider's model list with unsaved settings and remember it."""
    return await service.refresh_models(db, data)


@router.get("/", response_model=list[ModelConfigPublic])
def list_configs(
    user: CurrentUser,
    db: SessionDep,
    # An int range, not the Literal[0, 1] of the body: query values arrive as text.
    status_: Annotated[int | None, Query(alias="status", ge=0, le=1)] = None,
    provider: ProviderKey | None = None,
) -> list[ModelConfigPublic]:
    """Every config (team-shared), sorted by provider then name; filter by status or provider."""
    return service.list_configs(db, user, status=status_, provider=provider)


@router.post("/", response_model=ModelConfigPublic, status_code=status.HTTP_201_CREATED)
def create_config(data: ModelConfigCreate, user: CurrentUser, db: SessionDep) -> ModelConfigPublic:
    """Create a config owned by the caller."""
    return service.create_config(db, user, data)


@router.get("/{config_id}", response_model=ModelConfigPublic)
def get_config(config_id: int, user: CurrentUser, db: SessionDep) -> ModelConfigPublic:
    """One config."""
    return service.get_config(db, user, config_id)


@router.put("/{config_id}", response_model=ModelConfigPublic)
def replace_config(
    config_id: int, data: ModelConfigCreate, user: CurrentUser, db: SessionDep
) -> ModelConfigPublic:
    """Replace a config (owner or admin); an omitted or null api_key keeps the stored key."""
    return service.replace_config(db, user, config_id, data)


@router.patch("/{config_id}", response_model=ModelConfigPublic)
def update_config(
    config_id: int, data: ModelConfigUpdate, user: CurrentUser, db: SessionDep
) -> ModelConfigPublic:
    """Change some fields of a config (owner or admin)."""
    return service.update_config(db, user, config_id, data)


@router.delete("/{config_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_config(config_id: int, user: CurrentUser, db: SessionDep) -> Response:
    """Delete a config (owner or admin)."""
    service.delete_config(db, user, config_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{config_id}/refresh-models", response_model=ProviderModels)
async def refresh_config_models(config_id: int, db: SessionDep) -> ProviderModels:
    """Fetch the model list of a saved config with its stored key and remember it."""
    return await service.refresh_models_for_config(db, config_id)


@router.post("/{config_id}/test", response_model=ConnectionTest)
async def test_config(config_id: int, db: SessionDep) -> ConnectionTest:
    """Send a one-token completion through a config: {ok, latency_ms, model, error}."""
    return await service.check_connection(db, config_id)
