"""The dashboard's counts: the user's own, and team totals for admins."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute
from app.schemas.dashboard import DashboardStats
from app.services import dashboard_service

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/dashboard",
    tags=["dashboard"],
    dependencies=[Depends(get_current_user)],
)


@router.get("/stats", response_model=DashboardStats)
def stats(user: CurrentUser, db: SessionDep) -> DashboardStats:
    """Own sessions, messages, model tests and images; admins also get the team's totals."""
    return dashboard_service.stats(db, user)
