#!/usr/bin/env bash
# GPU smoke run of the platform's vLLM serving path (app.engines.serving), for a host with an
# NVIDIA GPU and vLLM installed. Not a test: it runs the real thing once and prints what it saw.
#
#   bench/gpu_smoke.sh [options] [MODEL]
#
# MODEL is a local model folder (absolute path) or a hub id; without it the tiny Qwen2 model is
# built with scripts/make_tiny_model.py (random weights, head size 16: if this vLLM's attention
# backend refuses that head size, pass a real small model such as a Qwen2.5-0.5B-Instruct folder).
#
# Steps: check for a GPU and vllm (exit 2 with the reason when either is missing), start
# `vllm serve` through start_server (own process group, log, exit file, as the platform does),
# wait for /v1/models (probe_ready), stream one chat completion with curl (the key goes to curl
# on stdin, not argv), unload with stop_server, check that the port is free again, print timings.
#
# Options:
#   --engine vllm|llamafactory   default vllm; llamafactory (HuggingFace backend) runs the same
#                                flow on a CPU host, to check this script itself
#   --gpu-util X                 gpu_memory_utilization (default 0.5)
#   --max-model-len N            max_model_len (default 1024)
#   --eager                      enforce_eager (skip CUDA graph capture: faster start)
#   --timeout S                  seconds to wait for the model (default 900)
#   --keep                       keep the runtime folder (serve.log) even on success
# Environment: VLLM_BIN (the vllm executable; default `vllm` on PATH), BACKEND_PYTHON (default
# .venv/bin/python: the backend's venv, `make setup`), TRAIN_ENGINE_BIN (llamafactory engine).
set -euo pipefail

fail() { # fail MESSAGE [EXIT_CODE]
    echo "gpu_smoke: FAIL: $1" >&2
    exit "${2:-1}"
}
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

ENGINE=vllm
GPU_UTIL=0.5
MAX_LEN=1024
EAGER=0
TIMEOUT=900
KEEP=0
MODEL=""
while [ $# -gt 0 ]; do
    case "$1" in
        --engine) ENGINE="${2:?--engine needs a value}"; shift 2 ;;
        --gpu-util) GPU_UTIL="${2:?--gpu-util needs a value}"; shift 2 ;;
        --max-model-len) MAX_LEN="${2:?--max-model-len needs a value}"; shift 2 ;;
        --eager) EAGER=1; shift ;;
        --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; fail "unknown option $1" 2 ;;
        *) [ -z "$MODEL" ] || fail "one model only" 2; MODEL="$1"; shift ;;
    esac
done
case "$ENGINE" in vllm | llamafactory) ;; *) fail "--engine must be vllm or llamafactory" 2 ;; esac

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${BACKEND_PYTHON:-$REPO/.venv/bin/python}"
[ -x "$PY" ] || fail "no backend python at $PY (run \`make setup\` or set BACKEND_PYTHON)" 2
command -v curl >/dev/null || fail "curl is not installed" 2
export PYTHONPATH="$REPO/backend${PYTHONPATH:+:$PYTHONPATH}"

# --- what this host has, asked through the platform's own discovery -----------------------------
BUILD_PY=""
if [ "$ENGINE" = vllm ]; then
    MISSING=()
    GPUS="$("$PY" -c 'from app.engines import detect_gpus; print("; ".join(detect_gpus()))')" ||
        fail "the backend python cannot import app.engines" 2
    [ -n "$GPUS" ] ||
        MISSING+=("vllm needs an NVIDIA GPU; this host has none (no driver, or CUDA_VISIBLE_DEVICES hides them)")
    VLLM="${VLLM_BIN:-$(command -v vllm || true)}"
    if [ -n "$VLLM" ] && [ -d "$VLLM" ]; then VLLM="$VLLM/vllm"; fi
    if [ -z "$VLLM" ]; then
        MISSING+=("vllm not found on PATH: install it (pip install vllm) and put it on PATH or set VLLM_BIN")
    elif [ ! -x "$VLLM" ]; then
        MISSING+=("vllm not found at $VLLM (VLLM_BIN)")
    fi
    if [ ${#MISSING[@]} -gt 0 ]; then
        for reason in "${MISSING[@]}"; do echo "gpu_smoke: FAIL: $reason" >&2; done
        exit 2
    fi
    export SMOKE_VLLM_BIN="$VLLM"
    BUILD_PY="$(dirname "$VLLM")/python"
    echo "gpu_smoke: GPU(s): $GPUS"
    echo "gpu_smoke: vllm:   $VLLM"
fi
TRAIN_BIN="${TRAIN_ENGINE_BIN:-$REPO/.venv-train/bin}"
[ -d "$TRAIN_BIN" ] || TRAIN_BIN="$(dirname "$TRAIN_BIN")"
if [ -z "$BUILD_PY" ] || [ ! -x "$BUILD_PY" ]; then
    BUILD_PY="$TRAIN_BIN/python"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gpu-smoke.XXXXXX")"
cleanup() {
    local code=$?
    if [ "$KEEP" = 1 ] || [ "$code" != 0 ]; then
        echo "gpu_smoke: runtime folder kept: $WORK (serve.log in $WORK/serving/smoke)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# --- the model -----------------------------------------------------------------------------------
if [ -z "$MODEL" ]; then
    [ -x "$BUILD_PY" ] || fail "no python with torch+transformers to build the tiny model ($BUILD_PY); pass a MODEL" 2
    echo "gpu_smoke: building the tiny model with $BUILD_PY"
    "$BUILD_PY" "$REPO/scripts/make_tiny_model.py" "$WORK/model" >"$WORK/build.log" 2>&1 ||
        fail "could not build the tiny model: $(tail -n 5 "$WORK/build.log")" 2
    MODEL="$WORK/model"
fi

# --- start, probe, stream, stop: the platform's code -------------------------------------------
export SMOKE_ENGINE="$ENGINE" SMOKE_MODEL="$MODEL" SMOKE_WORK="$WORK" SMOKE_GPU_UTIL="$GPU_UTIL"
export SMOKE_MAX_LEN="$MAX_LEN" SMOKE_EAGER="$EAGER" SMOKE_TIMEOUT="$TIMEOUT" SMOKE_TRAIN_BIN="$TRAIN_BIN"
"$PY" - <<'PY'
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

from app.engines import (
    ServeSpec,
    is_alive,
    pick_free_port,
    port_free,
    read_exit_code,
    runtime_layout,
    serving_failure_reason,
    serving_status,
    start_server,
    stop_server,
    validate_serve_spec,
    wait_ready,
)
from app.engines.process import _group_has_live_members

engine = os.environ["SMOKE_ENGINE"]
vllm_bin = Path(os.environ["SMOKE_VLLM_BIN"]) if engine == "vllm" else None
train_bin = Path(os.environ["SMOKE_TRAIN_BIN"])


def say(message: str) -> None:
    print(f"gpu_smoke: {message}", flush=True)


def fail(message: str, code: int = 1) -> None:
    print(f"gpu_smoke: FAIL: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


async def main() -> None:
    status = serving_status(engine, vllm_bin=vllm_bin, bin_dir=train_bin)
    if not status.available:
        fail(f"{status.missing} ({status.install_hint})", 2)
    say(f"engine {status.engine} {status.version or '(version unknown)'} at {status.executable}")
    args: dict[str, object] = {}
    if engine == "vllm":
        args = {
            "gpu_memory_utilization": float(os.environ["SMOKE_GPU_UTIL"]),
            "max_model_len": int(os.environ["SMOKE_MAX_LEN"]),
            "enforce_eager": os.environ["SMOKE_EAGER"] == "1",
        }
    spec = ServeSpec(
        name="smoke",
        model=os.environ["SMOKE_MODEL"],
        port=pick_free_port(),
        api_key="sk-smoke-" + secrets.token_urlsafe(24),
        template="default",
        engine=engine,
        engine_args=args,
    )
    problems = validate_serve_spec(
        spec, gpu_available=bool(status.gpus), gpu_count=len(status.gpus)
    )
    if problems:
        fail("; ".join(f"{p.field}: {p.message}" for p in problems), 2)
    layout = runtime_layout("smoke", Path(os.environ["SMOKE_WORK"]) / "serving")

    started = time.monotonic()
    handle = await start_server(spec, layout, vllm_bin=vllm_bin, bin_dir=train_bin)
    say(f"started pid {handle.pid} on port {spec.port}; waiting for /v1/models")
    try:
        outcome = await wait_ready(
            handle, spec, timeout_s=float(os.environ["SMOKE_TIMEOUT"]), poll_s=0.5
        )
        ready_s = time.monotonic() - started
        if outcome != "ready":
            code = read_exit_code(layout.exit_path)
            reason = serving_failure_reason(code, layout.serve_log, port=spec.port, lines=40)
            fail(f"not ready ({outcome}) after {ready_s:.1f} s:\n{reason}")
        say(f"ready after {ready_s:.1f} s")

        # One streamed chat completion with curl; the key reaches curl on stdin (-K -).
        body = json.dumps(
            {
                "model": spec.name,
                "messages": [{"role": "user", "content": "Say hello in five words."}],
                "max_tokens": 32,
                "stream": True,
            }
        )
        config = (
            f'header = "Authorization: Bearer {spec.api_key}"\n'
            'header = "Content-Type: application/json"\n'
        )
        sent = time.monotonic()
        curl = subprocess.Popen(
            ["curl", "-sS", "-N", "--max-time", "300", "-K", "-", "--data-binary", body,
             f"{spec.base_url}/chat/completions"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert curl.stdin is not None and curl.stdout is not None
        curl.stdin.write(config)
        curl.stdin.close()
        first_token_s = None
        pieces: list[str] = []
        data_lines: list[str] = []
        for line in curl.stdout:
            line = line.strip()
            if not line.startswith("data:"):
                continue
            payload = line[len("data:"):].strip()
            data_lines.append(payload)
            if payload == "[DONE]":
                continue
            try:
                chunk = json.loads(payload)
                delta = chunk["choices"][0].get("delta", {}).get("content") or ""
            except (ValueError, KeyError, IndexError):
                fail(f"not a chat chunk: {payload[:200]}")
            if delta and first_token_s is None:
                first_token_s = time.monotonic() - sent
            pieces.append(delta)
        curl_code = curl.wait()
        total_s = time.monotonic() - sent
        if curl_code != 0:
            fail(f"curl exited {curl_code}")
        if not data_lines or data_lines[-1] != "[DONE]":
            fail(f"the stream did not end with data: [DONE] (last: {data_lines[-1:]})")
        text = "".join(pieces)
        if not text:
            fail("the stream carried no text")
        first = f"{first_token_s:.3f} s" if first_token_s is not None else "n/a"
        say(f"first token after {first}; whole answer after {total_s:.3f} s")
        say(f"text: {text!r}")
    finally:
        result = await stop_server(handle)
    free = port_free(spec.port)
    gone = not _group_has_live_members(handle.pgid) and not is_alive(handle.pid, handle.start_time)
    say(f"unloaded: {result.outcome} after {result.elapsed_s:.2f} s; port {spec.port} freed: {free}")
    if not (free and gone):
        fail("the server did not go away cleanly")
    say("OK")


asyncio.run(main())
PY
