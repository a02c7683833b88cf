"""Service-level checks: is the database reachable."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

logger = logging.getLogger(__name__)


def database_ok(db: Session) -> bool:
    """Run a trivial query; False (and a log line) when the database does not answer."""
    try:
        db.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        logger.error("Database health check failed: %s", exc.__class__.__name__)
        db.rollback()
        return False
    return True
