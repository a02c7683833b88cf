"""Service-level checks: is the database reachable."""

from __future__ import annotations

import logging

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.database import SessionLocal

logger = logging.getLogger(__name__)


def database_ok() -> bool:
    """Run a trivial query on a short session; False (and a log line) when it fails."""
    try:
        with SessionLocal() as db:
            db.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        logger.error("Database health check failed: %s", exc.__class__.__name__)
        return False
    return True
