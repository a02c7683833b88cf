"""User administration (admins only)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response, status

from app.api.deps import AdminUser, SessionDep, require_admin
from app.api.routing import CommittingRoute
from app.schemas.common import Page
from app.schemas.user import AdminStats, AdminUserPublic, AdminUserUpdate, ResetLink
from app.services import user_service

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
)


@router.get("/users", response_model=Page[AdminUserPublic])
def list_users(
    db: SessionDep,
    page: Annotated[int, Query(ge=1)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
    q: Annotated[str | None, Query(max_length=100)] = None,
    role: Literal["admin", "user"] | None = None,
) -> Page[AdminUserPublic]:
    """Search users (email or nickname), newest first."""
    return user_service.list_users(db, page=page, size=size, q=q, role=role)


@router.patch("/users/{user_id}", response_model=AdminUserPublic)
def update_user(
    user_id: int, data: AdminUserUpdate, admin: AdminUser, db: SessionDep
) -> AdminUserPublic:
    """Change a user's role or enable/disable the account."""
    return AdminUserPublic.model_validate(user_service.update_user(db, admin, user_id, data))


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_user(user_id: int, admin: AdminUser, db: SessionDep) -> Response:
    """Delete a user and what they own."""
    user_service.delete_user(db, admin, user_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/users/{user_id}/password-reset", response_model=ResetLink)
def password_reset_link(user_id: int, admin: AdminUser, db: SessionDep) -> ResetLink:
    """Create a password-reset link to hand to the user by hand."""
    delivery = user_service.admin_reset_link(db, admin, user_id)
    return ResetLink(reset_url=delivery.reset_url, expires_at=delivery.expires_at)


@router.get("/stats", response_model=AdminStats)
def stats(db: SessionDep) -> AdminStats:
    """Counts for the admin dashboard."""
    return user_service.stats(db)
