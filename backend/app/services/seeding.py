"""Seed rows once per database: an app_state marker remembers it, so a seeded row that someone
deleted is not re-created at the next start."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.database import Base, utcnow
from app.models import AppState, User, UserRole

logger = logging.getLogger(__name__)


def system_owner(db: Session) -> User | None:
    """Who owns seeded rows: the protected default admin, else the longest-standing admin."""
    return db.scalar(
        select(User)
        .where(User.role == UserRole.ADMIN.value)
        .order_by(User.is_protected.desc(), User.id)
        .limit(1)
    )


def seed_once(
    db: Session,
    marker: str,
    what: str,
    build: Callable[[User, datetime], Iterable[Base]],
) -> int:
    """Add the rows `build(owner, now)` yields, once per database; returns how many.

    Safe against a second server starting at the same moment: the marker (and the rows' own
    unique keys) collide, and the loser's savepoint is rolled back. `build` skips rows that
    already exist (a partial earlier seed)."""
    if db.get(AppState, marker) is not None:
        return 0
    owner = system_owner(db)
    if owner is None:
        logger.warning("No admin account exists yet; %s not created", what)
        return 0
    now = utcnow()
    try:
        with db.begin_nested():
            rows = list(build(owner, now))
            db.add_all(rows)
            db.add(AppState(key=marker, value=now.isoformat(), updated_at=now))
            db.flush()
    except IntegrityError:
        logger.info("%s were seeded by another process", what.capitalize())
        return 0
    if rows:
        logger.info("Created %d %s", len(rows), what)
    return len(rows)
