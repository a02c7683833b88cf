"""Test session set-up: an isolated database (SQLite, or PostgreSQL with MT_TEST_DB=postgresql)
built by the real migrations, the real app, and per-test clean tables."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# --- environment: must be set before anything imports `app` --------------------------------
_TMP = Path(tempfile.mkdtemp(prefix="modeltrain-tests-"))
_CONFIG_SOURCE = (Path(__file__).resolve().parents[1] / "app" / "config.py").read_text()
for _key in re.findall(r"^    ([A-Z][A-Z0-9_]+): ", _CONFIG_SOURCE, re.MULTILINE):
    os.environ.pop(_key, None)  # nothing from the caller's environment leaks into the tests
os.environ["MODELTRAIN_ENV_FILE"] = ""
os.environ["DATA_DIR"] = str(_TMP / "data")
os.environ["UPLOAD_DIR"] = str(_TMP / "uploads")
os.environ["TRAINING_OUTPUT_DIR"] = str(_TMP / "training")
os.environ["SERVING_DIR"] = str(_TMP / "serving")
os.environ["LOG_LEVEL"] = "WARNING"
os.environ["FRONTEND_DIST"] = str(_TMP / "no-spa-build")  # test_spa.py builds its own

TEST_DB = os.environ.get("MT_TEST_DB", "sqlite")
if TEST_DB == "postgresql":
    _pg_url = os.environ.get("TEST_DATABASE_URL")
    if not _pg_url:
        raise RuntimeError("MT_TEST_DB=postgresql needs TEST_DATABASE_URL")
    os.environ["DATABASE_URL"] = _pg_url
elif TEST_DB == "sqlite":
    os.environ["DATABASE_URL"] = f"sqlite:///{_TMP / 'test.db'}"
else:
    raise RuntimeError(f"MT_TEST_DB must be sqlite or postgresql, not {TEST_DB!r}")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from app.config import settings  # noqa: E402
from app.database import Base, SessionLocal, engine, session_scope  # noqa: E402
from app.factory import create_app  # noqa: E402
from app.migrations import upgrade_head  # noqa: E402
from app.services import auth_service, model_config_service, prompt_service  # noqa: E402
from tests.factories import DEFAULT_PASSWORD, auth_headers, make_user  # noqa: E402


def pytest_report_header() -> str:
    return (
        f"modeltrain test database: {TEST_DB} ({engine.url.render_as_string(hide_password=True)})"
    )


def _reset_schema() -> None:
    """Start from an empty database so that the migrations build everything."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            Base.metadata.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture(scope="session")
def app() -> Iterator[FastAPI]:
    _reset_schema()
    upgrade_head(engine)
    application = create_app()
    with TestClient(application):  # runs the real lifespan: migrations, default admin
        yield application
    engine.dispose()
    shutil.rmtree(_TMP, ignore_errors=True)


def _stop_leftover_processes() -> None:
    """A test that fails half-way may leave a training run or a served model going: its
    process group outlives the test (by design: it outlives the server too). Stop it here."""
    from app.engines.process import is_alive
    from app.models import ModelRuntime, TrainingJob

    with session_scope() as db:
        groups = [
            (pid, start)
            for model in (TrainingJob, ModelRuntime)
            for pid, start in db.execute(
                select(model.pid, model.proc_start_time).where(model.pid.is_not(None))
            ).all()
        ]
    for pid, start in groups:
        if start is not None and is_alive(pid, start):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def _truncate_all() -> None:
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture(autouse=True)
def clean_state(app: FastAPI) -> Iterator[None]:
    """Every test starts with only the default admin and fresh rate limits."""
    yield
    _stop_leftover_processes()
    _truncate_all()
    with session_scope() as db:
        auth_service.ensure_default_admin(db)
        model_config_service.seed_default_templates(db)
        prompt_service.seed_builtin_prompts(db)
    auth_service.login_failures.clear()
    auth_service.reset_requests.clear()
    auth_service._default_password_checks.clear()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture
def db() -> Iterator[Session]:
    session = SessionLocal()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@pytest.fixture
def user(db: Session) -> object:
    return make_user(db, "alice@example.com", "alice")


@pytest.fixture
def other_user(db: Session) -> object:
    return make_user(db, "carol@example.com", "carol")


@pytest.fixture
def admin(db: Session) -> object:
    return make_user(db, "boss@example.com", "boss", role="admin")


@pytest.fixture
def user_headers(client: TestClient, user: object) -> dict[str, str]:
    return auth_headers(client, "alice", DEFAULT_PASSWORD)


@pytest.fixture
def admin_headers(client: TestClient, admin: object) -> dict[str, str]:
    return auth_headers(client, "boss", DEFAULT_PASSWORD)


@pytest.fixture
def anon_client(app: FastAPI) -> Iterator[TestClient]:
    """A second browser: its own cookie jar."""
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


__all__ = ["settings"]
