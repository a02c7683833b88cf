"""The product's loop through the HTTP API with the real engines on CPU: tiny model -> dataset
upload -> LoRA training -> deploy (llamafactory engine, base model beside it) -> the configs
appear enabled -> a streamed chat through /api/chat -> a playground compare of base vs.
fine-tuned -> unload frees the port and disables the config. Then the failure paths of serving:
a broken model, the engine killed from outside, unload while loading.
Needs the training venv (`make train-env`; TRAIN_ENGINE_REQUIRED=1 makes its absence a failure).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.config import settings
from app.engines.process import group_exists
from app.engines.serving import port_free
from tests.api.test_training_engine import finished, job_body, upload_alpaca, wait_for
from tests.engine_fixtures import engine_bin, tiny_model

__all__ = ["engine_bin", "tiny_model"]

READY_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def use_engine(engine_bin: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings, "TRAIN_ENGINE_BIN", engine_bin)
    # The tiny model runs on the CPU, GPU or not (and vLLM is not the default here).
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


def runtime(client: TestClient, headers: dict[str, str], runtime_id: int) -> dict[str, Any]:
    response = client.get(f"/api/model/{runtime_id}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_runtime(
    client: TestClient,
    headers: dict[str, str],
    runtime_id: int,
    done: Callable[[dict[str, Any]], bool],
    timeout: float = READY_TIMEOUT_S,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        current = runtime(client, headers, runtime_id)
        if done(current):
            return current
        if time.monotonic() > deadline:
            logs = client.get(f"/api/model/{runtime_id}/logs", headers=headers).json()
            pytest.fail(f"runtime stuck in {current['status']}:\n" + "\n".join(logs["lines"]))
        time.sleep(0.5)


def sse_frames(response: Any) -> list[Any]:
    frames = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            frames.append(data if data.startswith("[") else json.loads(data))
    return frames


def test_train_deploy_chat_compare_unload(
    client: TestClient, user_headers: dict[str, str], tiny_model: Path
) -> None:
    dataset_id = upload_alpaca(client, user_headers)
    job = client.post(
        "/api/training", json=job_body(tiny_model, dataset_id, start=True), headers=user_headers
    ).json()
    job = wait_for(client, user_headers, job["id"], finished)
    assert job["status"] == "succeeded", job["reason"]

    deployed = client.post(
        f"/api/training/{job['id']}/deploy", json={"engine": "llamafactory"}, headers=user_headers
    )
    assert deployed.status_code == 201, deployed.text
    tuned, base = deployed.json()["runtime"], deployed.json()["base_runtime"]
    assert tuned["status"] == "loading" and tuned["adapter_path"].endswith("/output")
    assert base is not None and base["base_model"] == str(tiny_model)
    assert base["adapter_path"] is None

    tuned = wait_runtime(client, user_headers, tuned["id"], lambda r: r["status"] != "loading")
    base = wait_runtime(client, user_headers, base["id"], lambda r: r["status"] != "loading")
    assert tuned["status"] == "ready", tuned["reason"]
    assert base["status"] == "ready", base["reason"]
    assert tuned["endpoint"] == f"http://127.0.0.1:{tuned['port']}/v1"
    assert not port_free(tuned["port"])

    # The configs appeared, enabled, for everyone to use.
    listed = client.get("/api/model-config/", headers=user_headers).json()
    configs = {c["id"]: c for c in listed}
    tuned_config = configs[tuned["model_config_id"]]
    assert tuned_config["status"] == 1 and tuned_config["provider"] == "vllm"
    assert tuned_config["model"] == tuned["name"]
    assert tuned_config["endpoint"] == tuned["endpoint"]
    assert tuned_config["has_api_key"] is True  # the engine requires the generated key

    # A streamed chat through the platform's chat API, answered by the served model.
    session = client.post(
        "/api/chat/sessions",
        json={"model_config_id": tuned["model_config_id"]},
        headers=user_headers,
    ).json()
    with client.stream(
        "POST",
        f"/api/chat/sessions/{session['id']}/stream",
        json={"content": "Tell me about topic 3.", "params": {"max_tokens": 16}},
        headers=user_headers,
    ) as response:
        assert response.status_code == 200
        frames = sse_frames(response)
    assert frames[-1] == "[DONE]", frames
    text = "".join(
        f.get("text", "") for f in frames if isinstance(f, dict) and f["type"] == "content"
    )
    assert text.strip(), frames
    messages = client.get(
        f"/api/chat/sessions/{session['id']}/messages", headers=user_headers
    ).json()
    items = messages["items"]
    assert items[-1]["role"] == "assistant" and items[-1]["status"] == "complete"

    # Base vs. fine-tuned, side by side.
    compared = client.post(
        "/api/playground/compare",
        json={
            "model_config_ids": [base["model_config_id"], tuned["model_config_id"]],
            "messages": [{"role": "user", "content": "Tell me about topic 5."}],
            "params": {"max_tokens": 16},
        },
        headers=user_headers,
    )
    assert compared.status_code == 200, compared.text
    results = compared.json()["results"]
    assert len(results) == 2
    for result in results:
        assert result["error"] is None, result
        assert result["content"].strip()
        assert result["metrics"]["total_ms"] > 0

    # Unload frees the port and disables the config.
    port = tuned["port"]
    unloaded = client.post(f"/api/model/{tuned['id']}/unload", headers=user_headers)
    assert unloaded.status_code == 200 and unloaded.json()["status"] == "stopped"
    assert unloaded.json()["port"] is None and port_free(port)
    config = client.get(
        f"/api/model-config/{tuned['model_config_id']}", headers=user_headers
    ).json()
    assert config["status"] == 0
    # Loading again enables the same config on a new port.
    again = client.post(f"/api/model/{tuned['id']}/load", headers=user_headers)
    assert again.status_code == 200 and again.json()["status"] == "loading"
    # ... and unloading while it loads stops it all the same.
    stopped = client.post(f"/api/model/{tuned['id']}/unload", headers=user_headers)
    assert stopped.json()["status"] == "stopped"
    # Deleting a loaded runtime unloads it first; its config goes with it.
    assert client.delete(f"/api/model/{base['id']}", headers=user_headers).status_code == 204
    assert (
        client.get(f"/api/model-config/{base['model_config_id']}", headers=user_headers).status_code
        == 404
    )
    assert client.delete(f"/api/model/{tuned['id']}", headers=user_headers).status_code == 204


def test_a_broken_model_fails_with_its_log_tail_and_a_killed_engine_is_noticed(
    client: TestClient, user_headers: dict[str, str], tiny_model: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in tiny_model.iterdir():
        if item.is_file():
            (broken / item.name).write_bytes(item.read_bytes())
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    created = client.post(
        "/api/model",
        json={"name": "broken", "source_kind": "path", "source": str(broken), "load": True},
        headers=user_headers,
    )
    assert created.status_code == 201, created.text
    failed = wait_runtime(
        client, user_headers, created.json()["id"], lambda r: r["status"] != "loading"
    )
    assert failed["status"] == "failed"
    assert "exit" in failed["reason"] and "no-such-architecture" in failed["reason"]

    good = client.post(
        "/api/model",
        json={"name": "tiny", "source_kind": "path", "source": str(tiny_model), "load": True},
        headers=user_headers,
    ).json()
    ready = wait_runtime(client, user_headers, good["id"], lambda r: r["status"] != "loading")
    assert ready["status"] == "ready", ready["reason"]
    from app.database import session_scope
    from app.models import ModelRuntime

    with session_scope() as db:
        row = db.get(ModelRuntime, good["id"])
        assert row is not None and row.pid is not None
        pid = row.pid
    os.killpg(pid, signal.SIGKILL)  # the engine dies behind the platform's back
    dead = wait_runtime(client, user_headers, good["id"], lambda r: r["status"] != "ready", 30)
    assert dead["status"] == "failed" and "while serving" in dead["reason"]
    deadline = time.monotonic() + 10
    while group_exists(pid):  # the killed processes are reaped
        assert time.monotonic() < deadline
        time.sleep(0.1)
    config = client.get(f"/api/model-config/{ready['model_config_id']}", headers=user_headers)
    assert config.json()["status"] == 0
