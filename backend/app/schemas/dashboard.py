"""Responses of the dashboard (`/api/dashboard`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.schemas.user import UserCounts


class ActivityCounts(BaseModel):
    """What a user (or the whole team) has made in the platform."""

    sessions: int
    messages: int
    model_tests: int
    images: int


class TeamCounts(ActivityCounts):
    """Team totals (admins): everybody's activity, plus the accounts as /api/admin/stats counts
    them."""

    users: UserCounts


class DashboardStats(BaseModel):
    mine: ActivityCounts
    team: TeamCounts | None = Field(description="Only for admins; null for everyone else")
