"""Training jobs with the real engine on CPU: a tiny Qwen2 model, an alpaca dataset uploaded
through the API, LoRA SFT runs supervised by the server, cancel and resume, the merge export,
SwanLab in local mode. Needs the training venv (`make train-env`; TRAIN_ENGINE_REQUIRED=1 makes
its absence a failure)."""

from __future__ import annotations

import io
import json
import math
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import settings
from app.engines.process import group_exists
from app.schemas.swanlab import SwanlabConfigUpdate
from app.services import swanlab_service, training_service
from tests.engine_fixtures import engine_bin, group_members, proc_file, tiny_model

__all__ = ["engine_bin", "tiny_model"]

RUN_TIMEOUT_S = 300
ALPACA = [
    {
        "instruction": f"Tell me about topic {i}.",
        "input": "",
        "output": f"Here is what I know about topic {i}.",
    }
    for i in range(16)
]


@pytest.fixture(autouse=True)
def use_engine(engine_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "TRAIN_ENGINE_BIN", engine_bin)


def upload_rows(
    client: TestClient, headers: dict[str, str], rows: list[dict[str, Any]], name: str
) -> dict[str, Any]:
    """Upload `rows` as a JSON Lines dataset called `name`; it must come out ready."""
    body = "\n".join(json.dumps(row) for row in rows).encode()
    response = client.post(
        "/api/training/datasets/upload",
        files={"file": ("tiny.jsonl", body, "application/octet-stream")},
        data={"name": name},
        headers=headers,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "ready"
    dataset: dict[str, Any] = response.json()
    return dataset


def upload_alpaca(client: TestClient, headers: dict[str, str]) -> int:
    return int(upload_rows(client, headers, ALPACA, "tiny alpaca")["id"])


def job_body(model: Path, dataset_id: int, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "tiny lora",
        "dataset_ids": [dataset_id],
        "base_model": str(model),
        "template": "default",
        "stage": "sft",
        "finetuning_type": "lora",
        "num_train_epochs": None,
        "max_steps": 10,
        "learning_rate": 1e-3,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "cutoff_len": 64,
        "logging_steps": 1,
        "save_steps": 5,
        "lora_rank": 4,
        "use_swanlab": False,
    }
    body.update(overrides)
    return body


def wait_for(
    client: TestClient,
    headers: dict[str, str],
    job_id: int,
    done: Any,
    timeout: float = RUN_TIMEOUT_S,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/training/{job_id}", headers=headers).json()
        if done(job):
            return job
        if time.monotonic() > deadline:
            logs = client.get(f"/api/training/{job_id}/logs", headers=headers).json()
            pytest.fail(f"job {job_id} stuck in {job['status']}:\n" + "\n".join(logs["lines"]))
        time.sleep(0.3)


def engine_environ(pgid: int) -> dict[str, str]:
    """The environment of the engine in process group `pgid` (the member that is not the
    `_runner.py` leader)."""
    for pid in group_members(pgid):
        if pid == pgid:
            continue
        try:
            raw = proc_file(pid, "environ")
        except OSError:
            continue
        pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
        return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}
    raise AssertionError(f"no engine process in group {pgid}")


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


@pytest.fixture
def swanlab_local(tmp_path: Path) -> Iterator[Path]:
    logdir = tmp_path / "swanlog"
    swanlab_service.update_config(
        SwanlabConfigUpdate(mode="local", logdir=str(logdir), project="tiny")
    )
    yield logdir
    swanlab_service.update_config(SwanlabConfigUpdate(mode="disabled", logdir=None))


def test_a_lora_sft_job_trains_streams_and_exports(
    client: TestClient,
    user_headers: dict[str, str],
    tiny_model: Path,
    swanlab_local: Path,
) -> None:
    dataset_id = upload_alpaca(client, user_headers)
    response = client.post(
        "/api/training",
        json=job_body(tiny_model, dataset_id, use_swanlab=None, swanlab_run_name="tiny-run"),
        headers=user_headers,
    )
    assert response.status_code == 201, response.text
    job = response.json()
    assert job["status"] == "created" and job["datasets"][0]["id"] == dataset_id
    job_id = job["id"]

    started = client.post(f"/api/training/{job_id}/start", headers=user_headers)
    assert started.status_code == 200, started.text
    assert started.json()["status"] in ("queued", "running")

    running = wait_for(client, user_headers, job_id, lambda j: j["status"] != "queued")
    if running["status"] == "running":
        # The dataset is in use while the job runs.
        refused = client.delete(f"/api/training/datasets/{dataset_id}", headers=user_headers)
        assert refused.status_code == 409 and refused.json()["code"] == "dataset_in_use"
        assert client.delete(f"/api/training/{job_id}", headers=user_headers).status_code == 409

    # The live events follow the job to its end.
    kinds: list[str] = []
    log_lines: list[str] = []
    points: list[dict[str, Any]] = []
    with client.stream("GET", f"/api/training/{job_id}/events", headers=user_headers) as stream:
        assert stream.status_code == 200
        for line in stream.iter_lines():
            if not line.startswith("data: "):
                continue
            data = line[len("data: ") :]
            if data == "[DONE]":
                break
            frame = json.loads(data)
            kinds.append(frame["type"])
            if frame["type"] == "log":
                log_lines += frame["lines"]
            if frame["type"] == "metrics":
                points += frame["points"]
    assert kinds[0] == "job" and kinds[-1] == "end"
    assert any("start: " in line for line in log_lines)

    job = wait_for(client, user_headers, job_id, finished)
    assert job["status"] == "succeeded", job["reason"]
    assert job["exit_code"] == 0 and job["attempt"] == 1
    assert job["progress"]["step"] == 10 and job["progress"]["total"] == 10
    assert job["progress"]["percentage"] == 100
    assert job["swanlab"] == {
        "enabled": True,
        "project": "tiny",
        "run_name": "tiny-run",
        "mode": "local",
    }

    metrics = client.get(f"/api/training/{job_id}/metrics", headers=user_headers).json()
    series = metrics["points"]
    assert [p["step"] for p in series] == list(range(1, 11))
    assert series[-1]["loss"] < series[0]["loss"]  # it learned something
    assert {p["step"] for p in points} <= {p["step"] for p in series}
    later = client.get(f"/api/training/{job_id}/metrics?after_step=7", headers=user_headers)
    assert [p["step"] for p in later.json()["points"]] == [8, 9, 10]

    names = {a["name"]: a for a in job["artifacts"]}
    assert {"adapter", "checkpoint-5", "checkpoint-10"} <= set(names)
    assert names["checkpoint-5"]["step"] == 5
    download = client.get(
        f"/api/training/{job_id}/artifacts/adapter/download", headers=user_headers
    )
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert archive.testzip() is None
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json"} <= set(
        archive.namelist()
    )
    missing = client.get(f"/api/training/{job_id}/artifacts/nothing/download", headers=user_headers)
    assert missing.status_code == 404

    tail = client.get(f"/api/training/{job_id}/logs", headers=user_headers).json()
    assert 0 < len(tail["lines"]) <= 200 and tail["next_offset"] == tail["size"]
    head = client.get(f"/api/training/{job_id}/logs?offset=0", headers=user_headers).json()
    assert head["offset"] == 0 and head["lines"][0].startswith("[modeltrain] ")
    assert "start: " in head["lines"][0] and head["lines"][-1] in tail["lines"]

    # SwanLab (local mode) wrote its run into the configured log folder.
    assert swanlab_local.is_dir() and any(swanlab_local.rglob("*"))

    # Merge the adapter into the base model, as a job of its own.
    exported = client.post(f"/api/training/{job_id}/export", json={}, headers=user_headers)
    assert exported.status_code == 201, exported.text
    export = exported.json()
    assert export["kind"] == "export" and export["source_job_id"] == job_id
    export = wait_for(client, user_headers, export["id"], finished)
    assert export["status"] == "succeeded", export["reason"]
    assert [a["name"] for a in export["artifacts"]] == ["merged"]
    merged_dir = Path(settings.TRAINING_OUTPUT_DIR) / str(export["id"]) / "merged"
    assert (merged_dir / "config.json").is_file()
    source = client.get(f"/api/training/{job_id}", headers=user_headers).json()
    assert source["exports"] == [
        {"id": export["id"], "name": export["name"], "status": "succeeded"}
    ]

    # Delete removes the folder; the export keeps its merged model.
    assert client.delete(f"/api/training/{job_id}", headers=user_headers).status_code == 204
    assert not (Path(settings.TRAINING_OUTPUT_DIR) / str(job_id)).exists()
    assert merged_dir.is_dir()


def test_cancel_stops_the_run_and_resume_continues_from_the_checkpoint(
    client: TestClient, user_headers: dict[str, str], tiny_model: Path
) -> None:
    dataset_id = upload_alpaca(client, user_headers)
    body = job_body(tiny_model, dataset_id, max_steps=5000, save_steps=3, start=True)
    job = client.post("/api/training", json=body, headers=user_headers).json()
    job_id = job["id"]
    assert job["status"] in ("queued", "running")
    job = wait_for(
        client, user_headers, job_id, lambda j: (j["progress"] or {}).get("step", 0) >= 4
    )
    pid = None
    from app.database import session_scope
    from app.models import TrainingJob

    with session_scope() as db:
        row = db.get(TrainingJob, job_id)
        assert row is not None
        pid = row.pid
    assert pid is not None and group_exists(pid)
    # The engine got the thread count the server chose for this host (TRAIN_CPU_THREADS).
    from app.services.training_service import cpu_threads

    expected = cpu_threads()
    engine = engine_environ(pid)
    assert engine.get("OMP_NUM_THREADS") == (
        str(expected) if expected is not None else os.environ.get("OMP_NUM_THREADS")
    )

    began = time.monotonic()
    response = client.post(f"/api/training/{job_id}/cancel", headers=user_headers)
    took = time.monotonic() - began
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "cancelled", job
    assert took < 12
    assert not group_exists(pid)
    assert job["reason"].startswith("cancelled at step")
    assert job["resumable"] is True
    stopped_at = job["progress"]["step"]
    assert stopped_at >= 4

    again = client.post(f"/api/training/{job_id}/cancel", headers=user_headers)
    assert again.status_code == 409 and again.json()["code"] == "invalid_state"

    resumed = client.post(f"/api/training/{job_id}/resume", headers=user_headers)
    assert resumed.status_code == 200, resumed.text
    job = wait_for(
        client,
        user_headers,
        job_id,
        lambda j: j["status"] == "running" and (j["progress"] or {}).get("step", 0) > stopped_at,
    )
    assert job["attempt"] == 2
    log = client.get(f"/api/training/{job_id}/logs?offset=0", headers=user_headers).json()
    assert sum("start: " in line for line in log["lines"]) == 2
    response = client.post(f"/api/training/{job_id}/cancel", headers=user_headers)
    assert response.json()["status"] == "cancelled"
    series = client.get(f"/api/training/{job_id}/metrics", headers=user_headers).json()["points"]
    steps = [p["step"] for p in series]
    assert steps == sorted(set(steps)) and steps[0] == 1  # one history, no repeated step


def test_a_run_that_fails_reports_its_exit_code_and_log_tail(
    client: TestClient, user_headers: dict[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    dataset_id = upload_alpaca(client, user_headers)
    # A model folder whose weights are garbage: valid for the form, fatal for the engine.
    broken = tmp_path / "broken-model"
    broken.mkdir()
    for item in tiny_model.iterdir():
        if item.is_file():
            (broken / item.name).write_bytes(item.read_bytes())
    for weights in broken.glob("*.safetensors"):
        weights.write_bytes(b"not a safetensors file")
    body = job_body(broken, dataset_id, start=True)
    job = client.post("/api/training", json=body, headers=user_headers).json()
    job = wait_for(client, user_headers, job["id"], finished)
    assert job["status"] == "failed"
    assert job["exit_code"] not in (None, 0)
    assert job["reason"].startswith(f"exit code {job['exit_code']}\n")
    assert job["resumable"] is False


KTO = [
    {
        "messages": [
            {"role": "user", "content": f"What is {i} plus {i}?"},
            {"role": "assistant", "content": str(2 * i) if i % 2 == 0 else "I do not know."},
        ],
        "kto_tag": i % 2 == 0,
    }
    for i in range(16)
]


def test_a_kto_job_trains_on_an_uploaded_kto_dataset(
    client: TestClient, user_headers: dict[str, str], tiny_model: Path
) -> None:
    dataset = upload_rows(client, user_headers, KTO, "tiny kto")
    assert dataset["detected_format"] == "kto"
    detail = client.get(f"/api/training/datasets/{dataset['id']}", headers=user_headers).json()
    assert detail["stats"]["labels"] == {"desirable": 8, "undesirable": 8}
    assert detail["llamafactory"]["columns"]["kto_tag"] == "kto_tag"

    # Other stages refuse it, naming what they need.
    for stage in ("sft", "dpo"):
        refused = client.post(
            "/api/training",
            json=job_body(tiny_model, dataset["id"], stage=stage),
            headers=user_headers,
        )
        assert refused.status_code == 422, refused.text
        assert "is a kto dataset" in refused.text

    created = client.post(
        "/api/training",
        json=job_body(tiny_model, dataset["id"], stage="kto", max_steps=4, start=True),
        headers=user_headers,
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    job = wait_for(client, user_headers, job_id, finished)
    assert job["status"] == "succeeded", job["reason"]
    assert job["stage"] == "kto" and job["progress"]["step"] == 4

    # The engine read the flags: the dataset_info entry names the column, and the KTO trainer
    # scored desirable and undesirable answers apart.
    layout = training_service.layout_of(job_id)
    info = json.loads((layout.data_dir / "dataset_info.json").read_text())
    (entry,) = info.values()
    assert entry["columns"]["kto_tag"] == "kto_tag"
    state = json.loads((layout.output_dir / "trainer_state.json").read_text())
    # (A batch of 2 may hold only one kind, so each kind is looked for across the 4 steps.)
    for kind in ("chosen", "rejected"):
        logged = [r[f"logps/{kind}"] for r in state["log_history"] if f"logps/{kind}" in r]
        assert logged and all(math.isfinite(value) for value in logged), kind
    metrics = client.get(f"/api/training/{job_id}/metrics", headers=user_headers).json()
    assert [p["step"] for p in metrics["points"]] == [1, 2, 3, 4]
