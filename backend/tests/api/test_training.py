"""Training jobs without a real training run: authorisation, validation, the queue, the state
rules, the engine-missing answers and the supervisor's reconciliation of jobs a previous server
left running (with stand-in processes). The real runs are in test_training_engine.py."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import settings
from app.database import session_scope
from app.engines import job_layout
from app.engines.process import group_exists, process_start_time, start_process
from app.models import TrainingJob, User
from app.services.training_runner import supervisor
from tests.engine_fixtures import engine_bin
from tests.factories import auth_headers

__all__ = ["engine_bin"]

URL = "/api/training"
ALPACA = [{"instruction": f"q{i}", "input": "", "output": f"a{i}"} for i in range(4)]
PREFERENCE = [{"prompt": f"q{i}", "chosen": "good", "rejected": "bad"} for i in range(4)]


def upload(client: TestClient, headers: dict[str, str], rows: list[Any], **form: str) -> int:
    body = "".join(json.dumps(row) + "\n" for row in rows).encode()
    response = client.post(
        "/api/training/datasets/upload",
        files={"file": ("d.jsonl", body, "application/octet-stream")},
        data=form,
        headers=headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A folder the form accepts as a local model (the engine never loads it here)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture
def with_engine(engine_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "TRAIN_ENGINE_BIN", engine_bin)


@pytest.fixture
def paused_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """No slot: queued jobs stay queued."""
    monkeypatch.setattr(settings, "TRAIN_MAX_CONCURRENT", 0)


def body(model: Path, dataset_id: int, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "job",
        "dataset_ids": [dataset_id],
        "base_model": str(model),
        "num_train_epochs": None,
        "max_steps": 5,
    }
    data.update(overrides)
    return data


def insert_job(owner: User, **values: Any) -> int:
    with session_scope() as db:
        row = TrainingJob(
            owner_id=owner.id,
            name=values.pop("name", "job"),
            base_model="/models/none",
            template="default",
            config={"max_steps": 5, "num_train_epochs": None},
            datasets=[],
            swanlab={},
            **values,
        )
        db.add(row)
        db.flush()
        return row.id


def wait_until(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        supervisor.wake()
        time.sleep(0.1)


def job_row(job_id: int) -> TrainingJob:
    with session_scope() as db:
        row = db.get(TrainingJob, job_id)
        assert row is not None
        db.expunge(row)
        return row


# ------------------------------------------------------------------------ authorisation


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", URL),
        ("post", URL),
        ("get", f"{URL}/engine"),
        ("get", f"{URL}/1"),
        ("patch", f"{URL}/1"),
        ("delete", f"{URL}/1"),
        ("post", f"{URL}/1/start"),
        ("post", f"{URL}/1/cancel"),
        ("post", f"{URL}/1/resume"),
        ("post", f"{URL}/1/export"),
        ("get", f"{URL}/1/metrics"),
        ("get", f"{URL}/1/logs"),
        ("get", f"{URL}/1/events"),
        ("get", f"{URL}/1/artifacts"),
        ("get", f"{URL}/1/artifacts/adapter/download"),
    ],
)
def test_anonymous_is_401(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={})
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_jobs_are_private_to_their_owner_and_visible_to_admins(
    client: TestClient,
    user: User,
    other_user: User,
    user_headers: dict[str, str],
    admin_headers: dict[str, str],
) -> None:
    mine = insert_job(user, name="mine")
    theirs = insert_job(other_user, name="theirs")
    listed = client.get(URL, headers=user_headers).json()
    assert [job["id"] for job in listed["items"]] == [mine] and listed["total"] == 1
    for method, path in [
        ("get", f"{URL}/{theirs}"),
        ("patch", f"{URL}/{theirs}"),
        ("delete", f"{URL}/{theirs}"),
        ("post", f"{URL}/{theirs}/cancel"),
        ("get", f"{URL}/{theirs}/metrics"),
        ("get", f"{URL}/{theirs}/logs"),
        ("get", f"{URL}/{theirs}/events"),
        ("get", f"{URL}/{theirs}/artifacts"),
    ]:
        response = client.request(method, path, json={"name": "x"}, headers=user_headers)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "job_not_found"
    everyone = client.get(URL, headers=admin_headers).json()
    assert {job["id"] for job in everyone["items"]} == {mine, theirs}
    own = client.get(f"{URL}?scope=mine", headers=admin_headers).json()
    assert own["items"] == []
    assert client.get(f"{URL}/{theirs}", headers=admin_headers).json()["owner"]["nickname"] == (
        "carol"
    )
    assert client.get(f"{URL}/999999", headers=user_headers).status_code == 404


def test_list_filters_and_rename(
    client: TestClient, user: User, user_headers: dict[str, str]
) -> None:
    first = insert_job(user, name="alpha run", status="failed")
    insert_job(user, name="beta run", status="succeeded")
    found = client.get(f"{URL}?status=failed", headers=user_headers).json()
    assert [job["id"] for job in found["items"]] == [first]
    found = client.get(f"{URL}?q=alp", headers=user_headers).json()
    assert [job["id"] for job in found["items"]] == [first]
    assert client.get(f"{URL}?status=bogus", headers=user_headers).status_code == 422
    renamed = client.patch(
        f"{URL}/{first}", json={"name": "  gamma  ", "description": "d"}, headers=user_headers
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "gamma"
    assert client.patch(f"{URL}/{first}", json={"name": ""}, headers=user_headers).status_code == (
        422
    )
    assert (
        client.patch(f"{URL}/{first}", json={"base_model": "/x"}, headers=user_headers).status_code
        == 422
    )


# ---------------------------------------------------------------------------- creating


@pytest.mark.usefixtures("with_engine", "paused_queue")
def test_create_validates_against_the_engine_and_this_host(
    client: TestClient, user_headers: dict[str, str], model_dir: Path
) -> None:
    alpaca = upload(client, user_headers, ALPACA)

    def problems(**overrides: Any) -> dict[str, str]:
        response = client.post(URL, json=body(model_dir, alpaca, **overrides), headers=user_headers)
        assert response.status_code == 422, response.text
        assert response.json()["code"] in ("invalid_training_spec", "validation_error")
        return {".".join(map(str, e["loc"][1:])): e["msg"] for e in response.json()["detail"]}

    assert "dataset_ids" in problems(stage="dpo")
    assert "preference" in problems(stage="dpo")["dataset_ids"]
    assert "max_steps" in problems(num_train_epochs=2.0)
    assert "base_model" in problems(base_model="/no/such/model")
    assert "base_model" in problems(base_model="relative/../x y")
    assert "template" in problems(template="no-such-template")
    assert "learning_rate" in problems(learning_rate=0)
    assert "output_dir" in problems(output_dir="/etc")  # not a field: never a user path
    if not os.environ.get("CUDA_VISIBLE_DEVICES") and not Path("/proc/driver/nvidia").exists():
        assert "GPU" in problems(finetuning_type="qlora")["finetuning_type"]
        assert "bf16" in problems(bf16=True)
    assert "dataset_ids.0" in problems(dataset_ids=[999999])
    assert "use_swanlab" in problems(use_swanlab=True)  # SwanLab is disabled by default
    assert client.get(URL, headers=user_headers).json()["total"] == 0  # nothing was written


@pytest.mark.usefixtures("with_engine", "paused_queue")
def test_datasets_must_be_visible_and_valid(
    client: TestClient,
    user_headers: dict[str, str],
    other_user: User,
    model_dir: Path,
) -> None:
    carol = auth_headers(client, "carol")
    private = upload(client, carol, ALPACA)
    shared = upload(client, carol, ALPACA, is_shared="true")
    broken = upload(client, user_headers, [{"nothing": "useful"}])
    response = client.post(URL, json=body(model_dir, private), headers=user_headers)
    assert response.status_code == 422 and "not found" in response.text
    response = client.post(URL, json=body(model_dir, broken), headers=user_headers)
    assert response.status_code == 422 and "invalid" in response.text
    response = client.post(URL, json=body(model_dir, shared), headers=user_headers)
    assert response.status_code == 201, response.text
    preference = upload(client, user_headers, PREFERENCE)
    response = client.post(URL, json=body(model_dir, preference, stage="dpo"), headers=user_headers)
    assert response.status_code == 201, response.text
    assert response.json()["datasets"] == [{"id": preference, "name": "d"}]


@pytest.mark.usefixtures("with_engine", "paused_queue")
def test_the_queue_is_fifo_and_a_queued_job_can_be_cancelled_or_deleted(
    client: TestClient, user_headers: dict[str, str], model_dir: Path
) -> None:
    dataset = upload(client, user_headers, ALPACA)
    ids = []
    for index in range(3):
        response = client.post(
            URL, json=body(model_dir, dataset, name=f"j{index}", start=True), headers=user_headers
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "queued"
        ids.append(response.json()["id"])
    positions = [client.get(f"{URL}/{i}", headers=user_headers).json() for i in ids]
    assert [job["queue_position"] for job in positions] == [1, 2, 3]

    # A queued job reads the dataset when it starts: the dataset cannot go.
    refused = client.delete(f"/api/training/datasets/{dataset}", headers=user_headers)
    assert refused.status_code == 409 and refused.json()["code"] == "dataset_in_use"

    again = client.post(f"{URL}/{ids[0]}/start", headers=user_headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    cancelled = client.post(f"{URL}/{ids[1]}/cancel", headers=user_headers)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["queue_position"] is None
    assert client.get(f"{URL}/{ids[2]}", headers=user_headers).json()["queue_position"] == 2
    assert client.delete(f"{URL}/{ids[0]}", headers=user_headers).status_code == 204
    assert client.get(f"{URL}/{ids[2]}", headers=user_headers).json()["queue_position"] == 1
    listed = client.get(f"{URL}?status=queued", headers=user_headers).json()
    assert [job["id"] for job in listed["items"]] == [ids[2]]


@pytest.mark.usefixtures("with_engine")
def test_state_rules(client: TestClient, user: User, user_headers: dict[str, str]) -> None:
    created = insert_job(user)
    cancel = client.post(f"{URL}/{created}/cancel", headers=user_headers)
    assert cancel.status_code == 409 and cancel.json()["code"] == "invalid_state"
    resume = client.post(f"{URL}/{created}/resume", headers=user_headers)
    assert resume.status_code == 409 and resume.json()["code"] == "invalid_state"
    failed = insert_job(user, status="failed")
    resume = client.post(f"{URL}/{failed}/resume", headers=user_headers)
    assert resume.status_code == 409 and resume.json()["code"] == "no_checkpoint"
    export = client.post(f"{URL}/{failed}/export", json={}, headers=user_headers)
    assert export.status_code == 409 and export.json()["code"] == "no_adapter"
    full = insert_job(user, status="succeeded", finetuning_type="full")
    export = client.post(f"{URL}/{full}/export", json={}, headers=user_headers)
    assert export.status_code == 409 and export.json()["code"] == "invalid_state"
    bad = client.post(f"{URL}/{failed}/export", json={"export_dtype": "int3"}, headers=user_headers)
    assert bad.status_code == 422
    assert client.get(f"{URL}/{failed}/logs", headers=user_headers).json() == {
        "offset": 0,
        "next_offset": 0,
        "size": 0,
        "lines": [],
        "truncated": False,
    }
    assert client.get(f"{URL}/{failed}/metrics", headers=user_headers).json() == {
        "progress": None,
        "points": [],
    }
    assert client.get(f"{URL}/{failed}/artifacts", headers=user_headers).json() == []
    assert (
        client.get(f"{URL}/{failed}/artifacts/adapter/download", headers=user_headers).json()[
            "code"
        ]
        == "artifact_not_found"
    )


def test_without_the_engine_the_api_says_what_to_run(
    client: TestClient,
    user: User,
    user_headers: dict[str, str],
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "TRAIN_ENGINE_BIN", tmp_path / "no-venv" / "bin")
    info = client.get(f"{URL}/engine", headers=user_headers).json()
    assert info["available"] is False and info["install_hint"] == "make train-env"
    assert info["templates"] == [] and "llamafactory-cli" in info["missing"]
    job = insert_job(user, status="failed")
    for method, path, payload in [
        ("post", URL, body(model_dir, 1)),
        ("post", f"{URL}/{job}/start", None),
        ("post", f"{URL}/{job}/resume", None),
        ("post", f"{URL}/{job}/export", {}),
    ]:
        response = client.request(method, path, json=payload, headers=user_headers)
        assert response.status_code == 409, (path, response.text)
        assert response.json()["code"] == "engine_unavailable"
        assert "make train-env" in response.json()["detail"]
    # Everything else still answers.
    assert client.get(f"{URL}/{job}", headers=user_headers).status_code == 200


# ------------------------------------------------------------------- reconciliation


def _layout_with_log(job_id: int, lines: list[str]) -> Path:
    layout = job_layout(job_id)
    layout.root.mkdir(parents=True, exist_ok=True)
    layout.train_log.write_text("\n".join(lines) + "\n")
    return layout.root


def test_a_job_whose_process_is_gone_becomes_failed_interrupted(user: User) -> None:
    # A live pid that is not the job's process (this test's own, with another start time): it is
    # treated as gone, and nothing is signalled.
    job_id = insert_job(
        user, status="running", pid=os.getpid(), proc_start_time=1, attempt=1, step=3
    )
    wait_until(lambda: job_row(job_id).status != "running")
    row = job_row(job_id)
    assert row.status == "failed" and row.reason is not None
    assert row.reason.startswith("interrupted")
    assert row.finished_at is not None


def test_a_job_that_ended_while_the_server_was_down_keeps_its_exit_code(user: User) -> None:
    job_id = insert_job(user, status="running", pid=2**22 - 7, proc_start_time=12345, attempt=1)
    root = _layout_with_log(job_id, ["loading", "Traceback (most recent call last):", "Boom"])
    (root / "train.exit.json").write_text(json.dumps({"returncode": 3}))
    wait_until(lambda: job_row(job_id).status != "running")
    row = job_row(job_id)
    assert row.status == "failed" and row.exit_code == 3
    assert row.reason == "exit code 3\nloading\nTraceback (most recent call last):\nBoom"


def test_a_running_job_left_by_a_previous_server_is_reattached_and_can_be_cancelled(
    client: TestClient, user: User, user_headers: dict[str, str], admin_headers: dict[str, str]
) -> None:
    # Created first, running only together with its process: a running row without one would
    # be finished as interrupted by the next pass.
    job_id = insert_job(user, status="created", attempt=1)
    layout = job_layout(job_id)

    async def launch() -> tuple[int, int]:
        handle = await start_process(
            ["sleep", "120"], cwd=Path("/"), env=dict(os.environ), log_path=layout.train_log
        )
        return handle.pid, handle.start_time

    pid, start_time = asyncio.run(launch())
    with session_scope() as db:
        row = db.get(TrainingJob, job_id)
        assert row is not None
        row.status, row.pid, row.proc_start_time = "running", pid, start_time
    try:
        supervisor.wake()
        time.sleep(1.5)  # a pass or two
        assert job_row(job_id).status == "running"  # alive: re-attached, not failed
        assert process_start_time(pid) == start_time

        # Its owner cannot be deleted while it runs.
        refused = client.delete(f"/api/admin/users/{user.id}", headers=admin_headers)
        assert refused.status_code == 409 and refused.json()["code"] == "job_running"
        deleting = client.delete(f"{URL}/{job_id}", headers=user_headers)
        assert deleting.status_code == 409 and deleting.json()["code"] == "job_running"

        began = time.monotonic()
        response = client.post(f"{URL}/{job_id}/cancel", headers=user_headers)
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert time.monotonic() - began < 12
        assert not group_exists(pid)
    finally:
        if group_exists(pid):
            os.killpg(pid, 9)


def test_a_running_job_whose_row_is_deleted_is_stopped(db: Session, user: User) -> None:
    # Created first, running only together with its process: a running row without one would
    # be finished as interrupted by the next pass.
    job_id = insert_job(user, status="created", attempt=1)
    layout = job_layout(job_id)

    async def launch() -> tuple[int, int]:
        handle = await start_process(
            ["sleep", "120"], cwd=Path("/"), env=dict(os.environ), log_path=layout.train_log
        )
        return handle.pid, handle.start_time

    pid, start_time = asyncio.run(launch())
    with session_scope() as session:
        row = session.get(TrainingJob, job_id)
        assert row is not None
        row.status, row.pid, row.proc_start_time = "running", pid, start_time
    try:
        wait_until(lambda: job_id in supervisor._runs)
        with session_scope() as session:
            session.query(TrainingJob).filter(TrainingJob.id == job_id).delete()
        wait_until(lambda: not group_exists(pid), timeout=20)
    finally:
        if group_exists(pid):
            os.killpg(pid, 9)
