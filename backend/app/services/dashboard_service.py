"""The dashboard's counts: the user's own activity and, for admins, the team's totals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ScalarSelect, Select, func, select
from sqlalchemy.orm import Mapped, Session

from app.models import ChatSession, Dataset, ModelTest, UploadedImage, User
from app.schemas.dashboard import ActivityCounts, DashboardStats, JobCounts, TeamCounts
from app.services import training_service, user_service


def _scoped(
    query: Select[tuple[int]], owner: Mapped[int], owner_id: int | None
) -> ScalarSelect[int]:
    return (query if owner_id is None else query.where(owner == owner_id)).scalar_subquery()


def _counts(owner_id: int | None) -> list[ScalarSelect[int]]:
    """Scalar subqueries for sessions, messages, model tests, images and datasets (of one owner,
    or of everybody). Messages are summed from the sessions' own counters rather than counted."""
    return [
        _scoped(select(func.count(ChatSession.id)), ChatSession.user_id, owner_id),
        _scoped(
            select(func.coalesce(func.sum(ChatSession.message_count), 0)),
            ChatSession.user_id,
            owner_id,
        ),
        _scoped(select(func.count(ModelTest.id)), ModelTest.owner_id, owner_id),
        _scoped(select(func.count(UploadedImage.id)), UploadedImage.owner_id, owner_id),
        _scoped(select(func.count(Dataset.id)), Dataset.owner_id, owner_id),
    ]


def _activity(values: Sequence[Any], jobs: dict[str, int]) -> ActivityCounts:
    sessions, messages, model_tests, images, datasets = (int(value or 0) for value in values)
    return ActivityCounts(
        sessions=sessions,
        messages=messages,
        model_tests=model_tests,
        images=images,
        datasets=datasets,
        jobs=JobCounts(**jobs),
    )


def stats(db: Session, actor: User) -> DashboardStats:
    """The actor's own counts in one query (and the jobs by status in another); for admins the
    team's in the same queries, plus the user counts of the admin stats."""
    columns = _counts(actor.id)
    if actor.is_admin:
        columns += _counts(None)
    row = db.execute(select(*columns)).one()
    mine = _activity(row[:5], training_service.status_counts(db, actor.id))
    team = None
    if actor.is_admin:
        totals = _activity(row[5:], training_service.status_counts(db, None))
        team = TeamCounts(**totals.model_dump(), users=user_service.stats(db).users)
    return DashboardStats(mine=mine, team=team)
