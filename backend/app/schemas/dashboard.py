"""Responses of the dashboard (`/api/dashboard`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.schemas.user import UserCounts


class JobCounts(BaseModel):
    """Training jobs by status."""

    created: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0


class ActivityCounts(BaseModel):
    """What a user (or the whole team) has made in the platform."""

    sessions: int
    messages: int
    model_tests: int
    images: int
    datasets: int
    jobs: JobCounts


class TeamCounts(ActivityCounts):
    """Team totals (admins): everybody's activity, plus the accounts as /api/admin/stats counts
    them."""

    users: UserCounts


class DashboardStats(BaseModel):
    mine: ActivityCounts
    team: TeamCounts | None = Field(description="Only for admins; null for everyone else")
