"""Alembic is the only way the schema changes: the models and the migrations must agree."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import FastAPI
from sqlalchemy import Connection, inspect, text
from sqlalchemy.orm import Session

import app.models  # noqa: F401
from app.database import Base, build_engine, engine
from app.migrations import alembic_config, migrate, upgrade_head
from app.models import Dataset, TrainingJob, TrainingJobDataset
from tests.factories import make_user


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
        migrate(fresh, "base", downgrade=True)
        assert set(inspect(fresh).get_table_names()) <= {"alembic_version"}
        upgrade_head(fresh)
        assert _diff(fresh) == []
    finally:
        fresh.dispose()


def _sqlite_sequence(conn: Connection, table: str) -> int | None:
    return conn.execute(
        text("SELECT seq FROM sqlite_sequence WHERE name = :table"), {"table": table}
    ).scalar()


def _dataset(owner_id: int, name: str, detected_format: str) -> Dataset:
    return Dataset(
        owner_id=owner_id,
        name=name,
        file_name="train.jsonl",
        file_format="jsonl",
        detected_format=detected_format,
        status="ready",
        size_bytes=1,
        llamafactory={"formatting": "alpaca", "columns": {"prompt": "instruction"}},
    )


def test_rebuilding_the_datasets_table_keeps_its_rows_links_and_ids(tmp_path: Path) -> None:
    # 0008 changes a CHECK constraint, which SQLite can only do by copying the table. The
    # copy must not cascade-delete the job links that reference it, nor restart its ids.
    url = f"sqlite:///{tmp_path / 'rebuild.db'}"
    fresh = build_engine(url)
    try:
        upgrade_head(fresh)
        with Session(fresh, expire_on_commit=False) as db:
            owner = make_user(db, "rebuild@example.com", "rebuild")
            kept = [
                _dataset(owner.id, f"d{n}", fmt)
                for n, fmt in enumerate(("alpaca", "kto", "preference"))
            ]
            doomed = _dataset(owner.id, "deleted", "alpaca")
            db.add_all([*kept, doomed])
            db.flush()
            job = TrainingJob(
                owner_id=owner.id,
                name="job",
                base_model="/models/none",
                template="default",
                config={},
                datasets=[],
                swanlab={},
            )
            db.add(job)
            db.flush()
            db.add_all([TrainingJobDataset(job_id=job.id, dataset_id=d.id) for d in kept])
            db.flush()
            db.delete(doomed)  # the highest id is gone: it must not be handed out again
            db.commit()
        with fresh.connect() as conn:
            high_water = _sqlite_sequence(conn, "datasets")
        assert high_water == doomed.id

        for target in ("0007_model_runtimes", "head"):
            migrate(fresh, target, downgrade=target != "head")
            with fresh.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM datasets")).scalar() == 3
                links = conn.execute(text("SELECT count(*) FROM training_job_datasets")).scalar()
                assert links == 3, f"after {target}"
                assert _sqlite_sequence(conn, "datasets") == high_water
                assert conn.execute(text("PRAGMA foreign_key_check")).fetchall() == []
                assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        with fresh.connect() as conn:
            formats = conn.execute(
                text("SELECT name, detected_format, status FROM datasets ORDER BY id")
            ).fetchall()
        # Down to 0007 a kto dataset became unrecognised; nothing turns it back.
        assert [tuple(row) for row in formats] == [
            ("d0", "alpaca", "ready"),
            ("d1", "unknown", "invalid"),
            ("d2", "preference", "ready"),
        ]
        assert _diff(fresh) == []
        with Session(fresh) as db:
            again = _dataset(owner.id, "new", "kto")
            db.add(again)
            db.commit()
            assert again.id == high_water + 1
    finally:
        fresh.dispose()
