"""Alembic is the only way the schema changes: the models and the migrations must agree."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import inspect

import app.models  # noqa: F401
from app.database import Base, build_engine, engine
from app.migrations import alembic_config, upgrade_head


def _diff(bind_engine: object) -> list[object]:
    with bind_engine.connect() as conn:  # type: ignore[attr-defined]
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, Base.metadata))


def test_models_match_migrations_on_test_database(app: FastAPI) -> None:
    # The session database (SQLite or PostgreSQL) was built by `upgrade head` alone.
    assert _diff(engine) == []


def test_single_head_and_linear_history() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1
    for revision in script.walk_revisions():
        assert revision.doc, f"migration {revision.revision} has no message"


def test_upgrade_downgrade_round_trip(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    fresh = build_engine(url)
    try:
        upgrade_head(fresh)
        assert {"users", "refresh_tokens", "password_reset_tokens"} <= set(
            inspect(fresh).get_table_names()
        )
        assert _diff(fresh) == []
        cfg = alembic_config()
        with fresh.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "base")
        assert set(inspect(fresh).get_table_names()) <= {"alembic_version"}
        upgrade_head(fresh)
        assert _diff(fresh) == []
    finally:
        fresh.dispose()
