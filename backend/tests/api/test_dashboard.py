"""Dashboard counts: own activity for everyone, team totals for admins, a fixed number of
aggregate queries."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.database import engine, utcnow
from app.models import ChatSession, Dataset, ModelTest, TrainingJob, UploadedImage, User
from app.services import dashboard_service
from app.services.training_runner import supervisor
from tests.factories import auth_headers, make_user

URL = "/api/dashboard/stats"


@pytest.fixture(autouse=True)
def hold_supervisor() -> Iterator[None]:
    """The jobs below are rows only: the supervisor must not start or finish them meanwhile."""
    supervisor.held = True
    try:
        yield
    finally:
        supervisor.held = False


NO_JOBS = {
    "created": 0,
    "queued": 0,
    "running": 0,
    "succeeded": 0,
    "failed": 0,
    "cancelled": 0,
}


def add_activity(
    db: Session,
    owner: User,
    *,
    sessions: int,
    messages_each: int,
    tests: int,
    images: int,
    datasets: int = 0,
    jobs: tuple[str, ...] = (),
) -> None:
    now = utcnow()
    for index in range(datasets):
        db.add(
            Dataset(
                owner_id=owner.id,
                name=f"d{index}",
                file_name="d.jsonl",
                file_format="jsonl",
                detected_format="alpaca",
                status="ready",
                size_bytes=1,
            )
        )
    for index, status in enumerate(jobs):
        db.add(
            TrainingJob(
                owner_id=owner.id,
                name=f"j{index}",
                status=status,
                base_model="Qwen/Qwen2.5-0.5B",
                template="qwen",
            )
        )
    for index in range(sessions):
        db.add(
            ChatSession(
                user_id=owner.id,
                title=f"s{index}",
                message_count=messages_each,
                created_at=now,
                updated_at=now,
            )
        )
    for index in range(tests):
        db.add(ModelTest(owner_id=owner.id, prompt=f"p{index}", results=[], created_at=now))
    for index in range(images):
        db.add(
            UploadedImage(
                id=f"{owner.id:08x}{index:024x}",
                owner_id=owner.id,
                mime_type="image/png",
                size_bytes=10,
                width=1,
                height=1,
                created_at=now,
            )
        )
    db.commit()


@contextmanager
def count_queries() -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_anonymous_is_401(client: TestClient) -> None:
    response = client.get(URL)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_pending_password_change_is_403(client: TestClient, db: Session) -> None:
    make_user(db, "dave@example.com", "dave", must_change_password=True)
    response = client.get(URL, headers=auth_headers(client, "dave"))
    assert response.status_code == 403
    assert response.json()["code"] == "password_change_required"


def test_user_sees_only_own_counts(
    client: TestClient, db: Session, user: User, other_user: User
) -> None:
    add_activity(
        db, user, sessions=2, messages_each=3, tests=1, images=4, datasets=2,
        jobs=("running", "queued", "queued", "failed"),
    )  # fmt: skip
    add_activity(
        db, other_user, sessions=5, messages_each=10, tests=7, images=1, datasets=3,
        jobs=("succeeded",),
    )  # fmt: skip
    response = client.get(URL, headers=auth_headers(client, "alice"))
    assert response.status_code == 200
    assert response.json() == {
        "mine": {
            "sessions": 2,
            "messages": 6,
            "model_tests": 1,
            "images": 4,
            "datasets": 2,
            "jobs": {**NO_JOBS, "running": 1, "queued": 2, "failed": 1},
        },
        "team": None,
    }


def test_new_user_has_zero_counts(client: TestClient, user_headers: dict[str, str]) -> None:
    body = client.get(URL, headers=user_headers).json()
    assert body["mine"] == {
        "sessions": 0,
        "messages": 0,
        "model_tests": 0,
        "images": 0,
        "datasets": 0,
        "jobs": NO_JOBS,
    }


def test_admin_gets_team_totals(
    client: TestClient,
    db: Session,
    admin: User,
    user: User,
    other_user: User,
    admin_headers: dict[str, str],
) -> None:
    add_activity(db, admin, sessions=1, messages_each=2, tests=0, images=1, jobs=("created",))
    add_activity(
        db, user, sessions=2, messages_each=3, tests=1, images=4, datasets=2,
        jobs=("running", "cancelled"),
    )  # fmt: skip
    add_activity(db, other_user, sessions=5, messages_each=10, tests=7, images=1, datasets=1)
    make_user(db, "gone@example.com", "gone", is_active=False)
    body = client.get(URL, headers=admin_headers).json()
    assert body["mine"] == {
        "sessions": 1,
        "messages": 2,
        "model_tests": 0,
        "images": 1,
        "datasets": 0,
        "jobs": {**NO_JOBS, "created": 1},
    }
    admin_stats = client.get("/api/admin/stats", headers=admin_headers).json()
    assert body["team"] == {
        "sessions": 8,
        "messages": 2 + 6 + 50,
        "model_tests": 8,
        "images": 6,
        "datasets": 3,
        "jobs": {**NO_JOBS, "created": 1, "running": 1, "cancelled": 1},
        "users": admin_stats["users"],
    }
    # default admin + boss + alice + carol + gone
    assert body["team"]["users"] == {"total": 5, "active": 4, "admins": 2}


def test_a_fixed_number_of_queries(db: Session, admin: User, user: User) -> None:
    add_activity(
        db, user, sessions=30, messages_each=3, tests=10, images=5, datasets=4,
        jobs=("running", "failed", "failed"),
    )  # fmt: skip
    with count_queries() as mine:
        dashboard_service.stats(db, user)
    with count_queries() as team:
        dashboard_service.stats(db, admin)
    assert len(mine) == 2  # the counts, and the jobs grouped by status
    assert len(team) == 4  # plus the team's jobs and the admin stats' user counts
