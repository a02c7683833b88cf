"""The system-prompt library: own, shared and built-in prompts; validate, convert, render."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute
from app.models.system_prompt import CATEGORY_MAX, TAG_MAX
from app.schemas.common import Page
from app.schemas.system_prompt import (
    ConvertRequest,
    ConvertResponse,
    PromptFacets,
    PromptScope,
    RenderRequest,
    RenderResponse,
    SystemPromptCreate,
    SystemPromptPublic,
    SystemPromptUpdate,
    ValidateRequest,
    ValidateResponse,
)
from app.services import prompt_service as service

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/chat/system-prompts",
    tags=["system-prompts"],
    dependencies=[Depends(get_current_user)],
)


@router.post("/validate", response_model=ValidateResponse)
def validate(data: ValidateRequest) -> ValidateResponse:
    """Check content for its format: errors and warnings with line/column, variables used."""
    return service.validate_content(data)


@router.post("/convert", response_model=ConvertResponse)
def convert(data: ConvertRequest) -> ConvertResponse:
    """Convert content among text, markdown, json, yaml and openai-messages (422 if impossible)."""
    return service.convert_content(data)


@router.post("/render", response_model=RenderResponse)
def render(data: RenderRequest, user: CurrentUser, db: SessionDep) -> RenderResponse:
    """Fill the variables (escaped for json/yaml) of a visible prompt or of given content."""
    return service.render_prompt(db, user, data)


@router.get("/facets", response_model=PromptFacets)
def facets(user: CurrentUser, db: SessionDep, scope: PromptScope = "all") -> PromptFacets:
    """The categories and tags in use among the visible prompts (filter choices)."""
    return service.prompt_facets(db, user, scope)


@router.get("/", response_model=Page[SystemPromptPublic])
def list_prompts(
    user: CurrentUser,
    db: SessionDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
    scope: PromptScope = "all",
    category: Annotated[str | None, Query(max_length=CATEGORY_MAX)] = None,
    tag: Annotated[str | None, Query(max_length=TAG_MAX)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[SystemPromptPublic]:
    """Own, shared and built-in prompts (admins: all), newest change first; filterable."""
    return service.list_prompts(
        db, user, page=page, size=size, scope=scope, category=category, tag=tag, q=q
    )


@router.post("/", response_model=SystemPromptPublic, status_code=status.HTTP_201_CREATED)
def create_prompt(
    data: SystemPromptCreate, user: CurrentUser, db: SessionDep
) -> SystemPromptPublic:
    """Create a prompt owned by the caller (private unless is_shared)."""
    return service.create_prompt(db, user, data)


@router.get("/{prompt_id}", response_model=SystemPromptPublic)
def get_prompt(prompt_id: int, user: CurrentUser, db: SessionDep) -> SystemPromptPublic:
    """One prompt the caller may see."""
    return service.get_prompt(db, user, prompt_id)


@router.put("/{prompt_id}", response_model=SystemPromptPublic)
def replace_prompt(
    prompt_id: int, data: SystemPromptCreate, user: CurrentUser, db: SessionDep
) -> SystemPromptPublic:
    """Replace a prompt (owner; built-ins and others' prompts: admins only)."""
    return service.replace_prompt(db, user, prompt_id, data)


@router.patch("/{prompt_id}", response_model=SystemPromptPublic)
def update_prompt(
    prompt_id: int, data: SystemPromptUpdate, user: CurrentUser, db: SessionDep
) -> SystemPromptPublic:
    """Change some fields of a prompt (owner; built-ins and others' prompts: admins only)."""
    return service.update_prompt(db, user, prompt_id, data)


@router.delete("/{prompt_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_prompt(prompt_id: int, user: CurrentUser, db: SessionDep) -> Response:
    """Delete a prompt (owner; built-ins and others' prompts: admins only)."""
    service.delete_prompt(db, user, prompt_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
