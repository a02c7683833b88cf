"""Deploy-to-first-token: the platform vs. `llamafactory-cli api` started by hand.

What is measured, per round, for the same tiny LoRA model (a 10-step adapter trained once through
the platform at start-up, on the tiny Qwen2 model built offline):

- platform: `POST /api/training/{id}/deploy` (with_base false) -> poll `GET /api/model/{id}`
  until `ready` -> `POST /api/playground/chat/stream` with one user message -> the first content
  frame of the relayed SSE stream. This includes the API, the supervisor noticing the request,
  starting the engine, probing `/v1/models`, creating the model config and relaying the stream.
- direct: the same serve.yaml and environment the platform generates (engines.serving), started
  with `nice -n SERVE_NICE llamafactory-cli api serve.yaml` from this script -> poll `/v1/models`
  every 50 ms -> the same chat request straight to the engine -> its first content chunk.

Rounds alternate platform / direct so drift (page cache, CPU frequency) cancels; the verdict
compares medians: platform / direct <= 1.1. The server and the engine share the machine's cores
in both paths (no pinning: the engine is the same process either way). Unload and process exit
are not timed. Prints a table and writes bench/results/deploy_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    BACKEND,
    REPO,
    free_port,
    platform_info,
    sign_in,
    start_backend,
    stop_process,
    tail,
    verdict,
    wait_until_ok,
    write_json,
)

TRAIN_BIN = REPO / ".venv-train" / "bin"
RESULTS = REPO / "bench" / "results" / "deploy_latency.json"
TARGET_RATIO = 1.1
READY_TIMEOUT_S = 300.0
PROMPT = [{"role": "user", "content": "Tell me about topic 3."}]
ROWS = [
    {"instruction": f"Tell me about topic {i}.", "input": "", "output": f"Topic {i} is fine."}
    for i in range(16)
]


def build_tiny_model(out: Path) -> None:
    subprocess.run(
        [str(TRAIN_BIN / "python"), str(REPO / "scripts" / "make_tiny_model.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=300,
    )


def wait_json(client: httpx.Client, path: str, done: Any, timeout: float, poll: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(path).json()
        if done(body):
            return body
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} stuck: {body}")
        time.sleep(poll)


def train_adapter(client: httpx.Client, model: Path) -> int:
    data = "".join(json.dumps(row) + "\n" for row in ROWS).encode()
    uploaded = client.post(
        "/api/training/datasets/upload",
        files={"file": ("tiny.jsonl", data, "application/octet-stream")},
    )
    uploaded.raise_for_status()
    created = client.post(
        "/api/training",
        json={
            "name": "bench-adapter",
            "dataset_ids": [uploaded.json()["id"]],
            "base_model": str(model),
            "template": "default",
            "num_train_epochs": None,
            "max_steps": 10,
            "logging_steps": 5,
            "save_steps": 1000,
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 1,
            "cutoff_len": 64,
            "use_swanlab": False,
            "start": True,
        },
    )
    created.raise_for_status()
    job_id: int = created.json()["id"]
    job = wait_json(
        client,
        f"/api/training/{job_id}",
        lambda j: j["status"] in ("succeeded", "failed", "cancelled"),
        READY_TIMEOUT_S,
        0.5,
    )
    if job["status"] != "succeeded":
        raise RuntimeError(f"training failed: {job['reason']}")
    return job_id


def first_content(response: httpx.Response, key: str) -> float:
    """Seconds (monotonic clock) when the first non-empty content arrived."""
    for line in response.iter_lines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        frame = json.loads(line[len("data: ") :])
        if key == "platform" and frame.get("type") == "content" and frame.get("text"):
            return time.monotonic()
        if key == "direct":
            choices = frame.get("choices") or [{}]
            if (choices[0].get("delta") or {}).get("content"):
                return time.monotonic()
        if frame.get("type") == "error":
            raise RuntimeError(f"stream error: {frame}")
    raise RuntimeError("the stream ended without content")


def platform_round(client: httpx.Client, job_id: int, index: int) -> dict[str, float]:
    started = time.monotonic()
    response = client.post(
        f"/api/training/{job_id}/deploy",
        json={"name": f"bench-{index}", "engine": "llamafactory", "with_base": False},
    )
    response.raise_for_status()
    runtime_id = response.json()["runtime"]["id"]
    runtime = wait_json(
        client,
        f"/api/model/{runtime_id}",
        lambda r: r["status"] != "loading",
        READY_TIMEOUT_S,
        0.05,
    )
    ready = time.monotonic()
    if runtime["status"] != "ready":
        raise RuntimeError(f"runtime failed: {runtime['reason']}")
    with client.stream(
        "POST",
        "/api/playground/chat/stream",
        json={
            "model_config_id": runtime["model_config_id"],
            "messages": PROMPT,
            "params": {"max_tokens": 16},
        },
    ) as stream:
        stream.raise_for_status()
        token = first_content(stream, "platform")
    client.post(f"/api/model/{runtime_id}/unload").raise_for_status()
    client.delete(f"/api/model/{runtime_id}")
    return {"ready_s": ready - started, "first_token_s": token - started}


def direct_round(work: Path, job_dir: Path, model: Path, index: int) -> dict[str, float]:
    sys.path.insert(0, str(BACKEND))
    from app.engines.serving import (
        SERVE_NICE,
        ServeSpec,
        llamafactory_api_env,
        llamafactory_api_yaml,
        pick_free_port,
        runtime_layout,
    )

    port = pick_free_port()
    key = "bench-direct-key-0123456789"
    spec = ServeSpec(
        name=f"direct-{index}",
        model=str(model),
        adapter=job_dir / "output",
        template="default",
        port=port,
        api_key=key,
    )
    layout = runtime_layout(f"direct-{index}", work / "direct")
    layout.root.mkdir(parents=True, exist_ok=True)
    yaml_path = layout.root / "serve.yaml"
    yaml_path.write_text(llamafactory_api_yaml(spec), encoding="utf-8")
    env = llamafactory_api_env(spec, layout, bin_dir=TRAIN_BIN, gpu_available=False)
    log_path = layout.root / "serve.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["nice", "-n", str(SERVE_NICE), str(TRAIN_BIN / "llamafactory-cli"), "api",
             str(yaml_path)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(timeout=60, headers=headers) as client:
            deadline = started + READY_TIMEOUT_S
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"direct server exited:\n{tail(log_path)}")
                try:
                    if client.get(f"{base}/models").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("direct server not ready")
                time.sleep(0.05)
            ready = time.monotonic()
            with client.stream(
                "POST",
                f"{base}/chat/completions",
                json={
                    "model": spec.name,
                    "messages": PROMPT,
                    "max_tokens": 16,
                    "stream": True,
                },
            ) as stream:
                stream.raise_for_status()
                token = first_content(stream, "direct")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return {"ready_s": ready - started, "first_token_s": token - started}


def unload_all(base_url: str, token: str | None) -> None:
    """Best effort: stop every model the platform still serves."""
    if token is None:
        return
    try:
        with httpx.Client(
            base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            for runtime in client.get("/api/model").json():
                if runtime["status"] in ("loading", "ready"):
                    client.post(f"/api/model/{runtime['id']}/unload")
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        pass


def summary(rows: list[dict[str, float]], key: str) -> dict[str, float]:
    values = [row[key] for row in rows]
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds per path (default 3)")
    args = parser.parse_args()
    if not (TRAIN_BIN / "llamafactory-cli").exists():
        print("the training venv is missing: run `make train-env`", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    server = None
    base_url = ""
    token: str | None = None
    try:
        model = work / "tiny-model"
        build_tiny_model(model)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log_path = work / "server.log"
        os.environ.update(
            {
                "TRAIN_ENGINE_BIN": str(TRAIN_BIN),
                "TRAINING_OUTPUT_DIR": str(work / "training"),
                "SERVING_DIR": str(work / "serving"),
                "UPLOAD_DIR": str(work / "uploads"),
                "CUDA_VISIBLE_DEVICES": "",
            }
        )
        server = start_backend(work, port, log_path, None)
        wait_until_ok(f"{base_url}/health", server, log_path, "backend")
        token = sign_in(base_url)
        with httpx.Client(
            base_url=base_url, timeout=120, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            print("training the adapter once ...", flush=True)
            job_id = train_adapter(client, model)
            job_dir = work / "training" / str(job_id)
            platform: list[dict[str, float]] = []
            direct: list[dict[str, float]] = []
            for index in range(args.rounds):
                platform.append(platform_round(client, job_id, index))
                print(f"round {index + 1} platform: {platform[-1]}", flush=True)
                direct.append(direct_round(work, job_dir, model, index))
                print(f"round {index + 1} direct:   {direct[-1]}", flush=True)
    except Exception as exc:
        if server is not None:
            print(tail(work / "server.log"), file=sys.stderr)
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        if server is not None:
            unload_all(base_url, token)  # served models outlive the server by design
            stop_process(server)
        shutil.rmtree(work, ignore_errors=True)

    p_first, d_first = summary(platform, "first_token_s"), summary(direct, "first_token_s")
    p_ready, d_ready = summary(platform, "ready_s"), summary(direct, "ready_s")
    ratio = p_first["median"] / d_first["median"]
    passed = ratio <= TARGET_RATIO
    print("\ndeploy -> first streamed token, tiny LoRA model, llamafactory-cli api on CPU")
    print(f"{'path':<10}{'ready p50':>12}{'first token p50':>18}{'min':>10}{'max':>10}")
    for name, ready, first in (("platform", p_ready, p_first), ("direct", d_ready, d_first)):
        print(
            f"{name:<10}{ready['median']:>11.2f}s{first['median']:>17.2f}s"
            f"{first['min']:>9.2f}s{first['max']:>9.2f}s"
        )
    print(f"\nratio platform / direct (median first token): {ratio:.3f}  "
          f"target <= {TARGET_RATIO}: {verdict(passed)}")  # fmt: skip
    write_json(
        RESULTS,
        {
            "benchmark": "deploy_latency",
            "platform_info": platform_info(),
            "rounds": args.rounds,
            "platform": {"rounds": platform, "ready": p_ready, "first_token": p_first},
            "direct": {"rounds": direct, "ready": d_ready, "first_token": d_first},
            "ratio_first_token_median": ratio,
            "target_ratio": TARGET_RATIO,
            "verdict": verdict(passed),
        },
    )
    return 0  # a benchmark: FAIL is printed, the exit code stays 0


if __name__ == "__main__":
    raise SystemExit(main())
