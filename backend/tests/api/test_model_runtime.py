"""Model runtimes without serving anything: authorisation and visibility, validation, the
missing-engine and port answers, the state rules, deploy refusals. The real serving loop is in
test_model_loop.py."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import settings
from app.database import session_scope
from app.engines import detect_gpus
from app.engines.process import is_alive, start_process
from app.engines.serving import runtime_layout
from app.models import ModelRuntime, TrainingJob, User
from app.services.training_runner import supervisor
from app.utils.crypto import encrypt_secret
from tests.engine_fixtures import engine_bin
from tests.factories import auth_headers

__all__ = ["engine_bin"]

URL = "/api/model"


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


@pytest.fixture(autouse=True)
def with_engine(engine_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "TRAIN_ENGINE_BIN", engine_bin)
    monkeypatch.setattr(settings, "VLLM_BIN", Path("/nonexistent/vllm"))


@pytest.fixture
def no_runtime_worker() -> Iterator[None]:
    """Rows set to `ready` by hand have no process: the supervisor would finish them as
    interrupted at its next pass. Hold it while a test fakes states."""
    supervisor.held = True
    try:
        yield
    finally:
        supervisor.held = False


def create(
    client: TestClient, headers: dict[str, str], model: Path, **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": "tiny", "source_kind": "path", "source": str(model)}
    body.update(overrides)
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def set_status(runtime_id: int, status: str) -> None:
    with session_scope() as db:
        row = db.get(ModelRuntime, runtime_id)
        assert row is not None
        row.status = status


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", URL),
        ("post", URL),
        ("get", f"{URL}/engines"),
        ("get", f"{URL}/1"),
        ("patch", f"{URL}/1"),
        ("delete", f"{URL}/1"),
        ("post", f"{URL}/1/load"),
        ("post", f"{URL}/1/unload"),
        ("get", f"{URL}/1/logs"),
        ("post", "/api/training/1/deploy"),
    ],
)
def test_anonymous_is_401(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={})
    assert response.status_code == 401


@pytest.mark.usefixtures("no_runtime_worker")
def test_create_list_and_visibility(
    client: TestClient,
    user_headers: dict[str, str],
    other_user: User,
    admin_headers: dict[str, str],
    model_dir: Path,
) -> None:
    mine = create(client, user_headers, model_dir, description="mine")
    assert mine["status"] == "stopped" and mine["port"] is None and mine["can_manage"] is True
    assert mine["engine"] == "llamafactory" and mine["template"] == "default"
    carol = auth_headers(client, "carol")
    theirs = create(client, carol, model_dir, name="carols")
    # Another user's runtime is invisible until it is ready.
    assert client.get(f"{URL}/{theirs['id']}", headers=user_headers).status_code == 404
    assert [r["id"] for r in client.get(URL, headers=user_headers).json()] == [mine["id"]]
    set_status(theirs["id"], "ready")
    seen = client.get(f"{URL}/{theirs['id']}", headers=user_headers).json()
    assert seen["status"] == "ready" and seen["can_manage"] is False
    for method, path in [
        ("post", f"{URL}/{theirs['id']}/load"),
        ("post", f"{URL}/{theirs['id']}/unload"),
        ("patch", f"{URL}/{theirs['id']}"),
        ("delete", f"{URL}/{theirs['id']}"),
        ("get", f"{URL}/{theirs['id']}/logs"),
    ]:
        response = client.request(method, path, json={}, headers=user_headers)
        assert response.status_code == 403, (method, path, response.text)
    set_status(theirs["id"], "stopped")
    assert {r["id"] for r in client.get(URL, headers=admin_headers).json()} == {
        mine["id"],
        theirs["id"],
    }
    assert client.get(f"{URL}/999999", headers=user_headers).json()["code"] == "runtime_not_found"


def test_validation(client: TestClient, user_headers: dict[str, str], model_dir: Path) -> None:
    def problem(**body: Any) -> str:
        data = {"name": "x", "source_kind": "path", "source": str(model_dir), **body}
        response = client.post(URL, json=data, headers=user_headers)
        assert response.status_code == 422, response.text
        return str(response.json()["detail"])

    assert "name" in problem(name="bad name!")
    assert "source" in problem(source="relative/model")
    assert "source" in problem(source="/no/such/model")
    assert "source" in problem(source_kind="hub", source="/abs/path")
    assert "engine_args" in problem(engine_args={"gpu_memory_utilization": 7})
    assert "engine_args" in problem(engine_args={"rm_rf": True})
    assert "port" in problem(port=80)
    assert "job_id" in problem(source_kind="job", source=None, job_id=999999)
    create(client, user_headers, model_dir, name="taken")
    response = client.post(
        URL, json={"name": "taken", "source": str(model_dir)}, headers=user_headers
    )
    assert response.status_code == 409 and response.json()["code"] == "name_taken"
    assert client.get(URL, headers=user_headers).json()[0]["name"] == "taken"


def test_engines_and_the_missing_engine_answer(
    client: TestClient, user_headers: dict[str, str], model_dir: Path
) -> None:
    engines = {e["engine"]: e for e in client.get(f"{URL}/engines", headers=user_headers).json()}
    assert engines["llamafactory"]["available"] is True
    assert engines["vllm"]["available"] is False and engines["vllm"]["missing"]
    runtime = create(client, user_headers, model_dir, engine="vllm")
    response = client.post(f"{URL}/{runtime['id']}/load", headers=user_headers)
    assert response.status_code == 409 and response.json()["code"] == "engine_unavailable"
    assert "vllm" in response.json()["detail"].lower()
    assert client.get(f"{URL}/{runtime['id']}", headers=user_headers).json()["status"] == "stopped"
    if not detect_gpus():
        assert "GPU" in response.json()["detail"] or "not found" in response.json()["detail"]


@pytest.mark.usefixtures("no_runtime_worker")
def test_port_in_use_and_state_rules(
    client: TestClient, user_headers: dict[str, str], model_dir: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runtime = create(client, user_headers, model_dir, port=port)
        response = client.post(f"{URL}/{runtime['id']}/load", headers=user_headers)
        assert response.status_code == 409 and response.json()["code"] == "port_in_use"
    unload = client.post(f"{URL}/{runtime['id']}/unload", headers=user_headers)
    assert unload.status_code == 409 and unload.json()["code"] == "invalid_state"
    set_status(runtime["id"], "ready")
    change = client.patch(f"{URL}/{runtime['id']}", json={"port": 9999}, headers=user_headers)
    assert change.status_code == 409 and change.json()["code"] == "invalid_state"
    described = client.patch(
        f"{URL}/{runtime['id']}", json={"description": "still fine"}, headers=user_headers
    )
    assert described.status_code == 200 and described.json()["description"] == "still fine"
    again = client.post(f"{URL}/{runtime['id']}/load", headers=user_headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"
    set_status(runtime["id"], "stopped")
    assert client.get(f"{URL}/{runtime['id']}/logs", headers=user_headers).json()["lines"] == []
    assert client.delete(f"{URL}/{runtime['id']}", headers=user_headers).status_code == 204
    assert client.get(f"{URL}/{runtime['id']}", headers=user_headers).status_code == 404


def test_deploy_needs_a_succeeded_job(
    client: TestClient, user: User, other_user: User, user_headers: dict[str, str]
) -> None:
    with session_scope() as db:
        job = TrainingJob(
            owner_id=user.id, name="j", status="failed", base_model="/m", template="default",
            config={}, datasets=[], swanlab={},
        )  # fmt: skip
        theirs = TrainingJob(
            owner_id=other_user.id, name="t", status="succeeded", base_model="/m",
            template="default", config={}, datasets=[], swanlab={},
        )  # fmt: skip
        db.add_all([job, theirs])
        db.flush()
        job_id, their_id = job.id, theirs.id
    response = client.post(f"/api/training/{job_id}/deploy", json={}, headers=user_headers)
    assert response.status_code == 409 and response.json()["code"] == "invalid_state"
    response = client.post(f"/api/training/{their_id}/deploy", json={}, headers=user_headers)
    assert response.status_code == 404
    with session_scope() as db:
        row = db.get(TrainingJob, job_id)
        assert row is not None
        row.status = "succeeded"
    # Succeeded, but nothing on disk to serve.
    response = client.post(f"/api/training/{job_id}/deploy", json={}, headers=user_headers)
    assert response.status_code == 422 and "artifact" in response.text
    assert client.get(URL, headers=user_headers).json() == []


def _stand_in_server(runtime_id: int) -> tuple[int, int]:
    """A process in the runtime's place (as a previous server would have left it running)."""
    layout = runtime_layout(runtime_id, settings.SERVING_DIR)

    async def launch() -> tuple[int, int]:
        handle = await start_process(
            ["sleep", "120"], cwd=Path("/"), env=dict(os.environ), log_path=layout.log
        )
        return handle.pid, handle.start_time

    return asyncio.run(launch())


def _wait_status(runtime_id: int, wanted: str, timeout: float = 15) -> ModelRuntime:
    deadline = time.monotonic() + timeout
    while True:
        supervisor.wake()
        with session_scope() as db:
            row = db.get(ModelRuntime, runtime_id)
            assert row is not None
            db.expunge(row)
        if row.status == wanted:
            return row
        assert time.monotonic() < deadline, f"still {row.status}"
        time.sleep(0.1)


def test_restart_reattaches_a_live_runtime_and_fails_a_dead_one(
    client: TestClient, user_headers: dict[str, str], model_dir: Path
) -> None:
    alive = create(client, user_headers, model_dir, name="alive")
    dead = create(client, user_headers, model_dir, name="dead")
    pid, start_time = _stand_in_server(alive["id"])
    key = encrypt_secret("k" * 20)
    try:
        with session_scope() as db:
            for runtime_id, values in (
                (alive["id"], {"pid": pid, "proc_start_time": start_time}),
                (dead["id"], {"pid": os.getpid(), "proc_start_time": 1}),  # not its process
            ):
                row = db.get(ModelRuntime, runtime_id)
                assert row is not None
                row.status, row.port, row.api_key_encrypted = "ready", 45678, key
                for name, value in values.items():
                    setattr(row, name, value)
        failed = _wait_status(dead["id"], "failed")
        assert failed.reason is not None and failed.reason.startswith("interrupted")
        time.sleep(1.2)  # a pass or two: the live one stays ready, re-attached
        assert _wait_status(alive["id"], "ready").pid == pid
        unloaded = client.post(f"{URL}/{alive['id']}/unload", headers=user_headers)
        assert unloaded.status_code == 200 and unloaded.json()["status"] == "stopped"
        assert not is_alive(pid, start_time)
    finally:
        if is_alive(pid, start_time):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.usefixtures("no_runtime_worker")
def test_a_job_whose_output_is_served_cannot_be_deleted(
    client: TestClient, user: User, user_headers: dict[str, str], model_dir: Path
) -> None:
    with session_scope() as db:
        job = TrainingJob(
            owner_id=user.id, name="j", status="succeeded", base_model=str(model_dir),
            template="default", config={}, datasets=[], swanlab={},
        )  # fmt: skip
        db.add(job)
        db.flush()
        runtime = ModelRuntime(
            owner_id=user.id, name="served", source_kind="job", source="job", job_id=job.id,
            base_model=str(model_dir), engine="llamafactory", status="ready",
        )  # fmt: skip
        db.add(runtime)
        db.flush()
        job_id, runtime_id = job.id, runtime.id
    refused = client.delete(f"/api/training/{job_id}", headers=user_headers)
    assert refused.status_code == 409 and refused.json()["code"] == "job_in_use"
    set_status(runtime_id, "stopped")
    assert client.delete(f"/api/training/{job_id}", headers=user_headers).status_code == 204
