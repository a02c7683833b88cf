"""Wrapper overhead: the same tiny training job through the platform and by `llamafactory-cli`.

Question: how much longer does a training job take when it is run through ModelTrain (API ->
queue -> supervisor -> `_runner.py` -> `llamafactory-cli train`, progress read from
trainer_log.jsonl into the database every second, status polled by a client) than when the
same yaml is run by hand? Target: platform wall time at most 1.05x the direct wall time
(medians), on a job that takes 20-40 s.

Set-up: a temporary folder holds everything. A tiny Qwen2 model is built offline
(`scripts/make_tiny_model.py`, random weights, ~0.5 MB) and an alpaca JSONL dataset (64 rows)
is written. The real server starts (`uvicorn main:app`, one worker, SQLite, no `.env`) with
TRAIN_ENGINE_BIN = the repository's `.venv-train/bin` and DATA_DIR, UPLOAD_DIR and
TRAINING_OUTPUT_DIR in the temporary folder; the script signs in and uploads the dataset
through `POST /api/training/datasets/upload`.

The two paths, run alternately (platform, direct, platform, direct, ...) after one unrecorded
warm-up pair, so that slow drift of the machine and a cold page cache fall on both alike:

- platform: `POST /api/training` with `start: true` (LoRA SFT, template "default",
  max_steps N, batch 2, no gradient accumulation, cutoff_len 64, logging_steps 1, no checkpoint
  before the end, SwanLab off), then `GET /api/training/{id}` every 0.1 s (`--poll-s`). Wall time
  runs from sending the POST to the answer of the first GET that reports `succeeded`.
- direct: the train.yaml the platform wrote for its latest job (TRAINING_OUTPUT_DIR/<id>/), with
  output_dir changed to a fresh folder and overwrite_output_dir true, run as
  `nice -n <DEFAULT_NICE> llamafactory-cli train that.yaml` in the environment the platform gives
  its engine: `engine_env()` of app/engines/llamafactory.py is called with the server's
  environment, so HF_HOME and MPLCONFIGDIR lie in the run's own (new, empty) folder, HF_HUB_OFFLINE,
  LLAMABOARD_ENABLED/WORKDIR, PYTHONUNBUFFERED ... are the same, and the server's own settings
  are left out, as the platform does. stdout and stderr go to a log file, as on the platform.
  Wall time runs from just before the fork to the exit (os.wait4).

The platform run is also split up, to explain its overhead: POST -> status `running` as the
client saw it, POST -> the job's `started_at` (the supervisor claimed it), POST -> the engine's
process group leader (`_runner.py`) was created (its start time in /proc, 10 ms resolution),
that process's life until the runner recorded the engine's exit (`ended_at` of train.exit.json),
and exit -> `finished_at` (the supervisor noticed) and exit -> `succeeded` seen by the client.
The job's own elapsed time (finished_at - started_at) is reported beside it.

Fairness: the server, both engines and this driver may use the same CPUs (none are pinned by
default; `--cpus` pins the server, and so the engines it starts, and the direct engine to the
same list), and both engines run at the same nice level (DEFAULT_NICE of app/engines/process.py,
19). The first platform run's engine environment (/proc/<pid>/environ) and nice level are
compared with the direct one's, and differences are printed. CPU seconds come from /proc: the
engine's (the server's reaped children for the platform, wait4's rusage for the direct run), the
server's own (request handling, the supervisor's reading and storing of metrics), and the rest
of the machine ("other", a warning above 10% of a core: the engines run at nice 19, so any other
busy program slows them down far beyond its share: torch's threads wait on each other, and one
busy core made a run 3-5x slower here). So on a shared machine each run first waits (up to
`--quiet-wait` s) until the machine has used less than 0.15 cores over 2 s, and a round in which
either run saw other programs use more than 10% of a core is "disturbed": printed, kept in the
JSON, but not counted. Rounds go on until `--rounds` undisturbed ones are in (at most
`--extra-rounds` more); the verdict is the ratio of the medians over the undisturbed rounds, n/a
(inconclusive) with fewer than 3. Run to run, a quiet engine still varies by about +-10% here,
so a 5% target needs several rounds. The 0.1 s polling is the brief's choice; the web UI follows
a job by SSE, which the server polls once a second.

    .venv/bin/python bench/training_overhead.py                  # 5 rounds of 1000 steps, ~5 min
    .venv/bin/python bench/training_overhead.py --quick          # 1 round of 200 steps
    .venv/bin/python bench/training_overhead.py --rounds 9 --poll-s 1 --cpus 0-1

A benchmark, not a test: it exits 0 whether or not the target is met, and prints FAIL. Without
the training venv (`make train-env`) it prints why and reports the target as not measured.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

RESULTS = Path(__file__).resolve().parent / "results"
ENGINE_BIN = benchlib.REPO / ".venv-train" / "bin"
TARGET_RATIO = 1.05
POLL_S = 0.1
RUN_TIMEOUT_S = 600.0
DATASET_ROWS = 64
QUIET_CORES = 0.15
MIN_CLEAN = 3
BUSY_PCT = 10.0
FINAL = ("succeeded", "failed", "cancelled")
_TICKS = os.sysconf("SC_CLK_TCK")


def _app_engine_api(cores: list[int] | None = None) -> tuple[Any, int]:
    """engine_env() and DEFAULT_NICE from the backend itself, so the direct run gets exactly
    what the platform gives its engine (imported with no .env read), including the torch thread
    count the server picks for a CPU-only host (TRAIN_CPU_THREADS auto, on the server's cores)."""
    os.environ.setdefault("MODELTRAIN_ENV_FILE", "")
    sys.path.insert(0, str(benchlib.BACKEND))
    from app.engines.llamafactory import (
        detect_gpus,
        engine_env,
        train_cpu_threads,
        usable_cores,
    )
    from app.engines.process import DEFAULT_NICE

    threads = train_cpu_threads(
        int(os.environ.get("TRAIN_CPU_THREADS") or 0),
        gpu_count=len(detect_gpus()),
        cores=len(cores) if cores else usable_cores(),
        concurrent=1,
        inherited=os.environ.get("OMP_NUM_THREADS"),
    )
    return functools.partial(engine_env, cpu_threads=threads), DEFAULT_NICE


# ------------------------------------------------------------------------------ /proc


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (index 0 = field 3, the state)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return raw.rsplit(")", 1)[1].split()


def _cpu(pid: int) -> tuple[float, float]:
    """(own utime+stime, reaped children's cutime+cstime) of a process, in seconds."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0, 0.0
    own = (int(fields[11]) + int(fields[12])) / _TICKS
    children = (int(fields[13]) + int(fields[14])) / _TICKS
    return own, children


def _machine_busy_s() -> float:
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in first[:7])
    return (user + nice + system + irq + softirq) / _TICKS


def _boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def _start_boottime(pid: int) -> float | None:
    """When `pid` started, in CLOCK_BOOTTIME seconds (/proc/<pid>/stat field 22)."""
    fields = _stat_fields(pid)
    return int(fields[19]) / _TICKS if fields else None


def _nice_of(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[16]) if fields else None


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)


def _find_runner(server_pid: int) -> int | None:
    """The `_runner.py` process the server started for its engine."""
    for pid in _children(server_pid):
        if any(part.endswith("_runner.py") for part in _cmdline(pid)):
            return pid
    return None


# Process groups of engines this script started (directly or through the server). Engines run in
# their own session and outlive the server by design, so an interrupted benchmark stops them.
_ENGINE_GROUPS: set[int] = set()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_engines() -> None:
    for pgid in list(_ENGINE_GROUPS):
        for sig, wait_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 1.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline and _group_alive(pgid):
                time.sleep(0.1)
        _ENGINE_GROUPS.discard(pgid)


def wait_for_quiet(limit_s: float, threshold: float = QUIET_CORES) -> float:
    """Wait (at most `limit_s`) until the machine used less than `threshold` cores over a 2 s
    window, nothing of ours running: the engines run at nice 19, so a run started while other
    programs are busy measures them. Returns the last window's use in cores."""
    deadline = time.monotonic() + limit_s
    while True:
        busy, start = _machine_busy_s(), time.monotonic()
        time.sleep(2.0)
        used = (_machine_busy_s() - busy) / (time.monotonic() - start)
        if used < threshold or time.monotonic() >= deadline:
            return used


class CpuRound:
    """CPU seconds used during one run: engine, server (own), driver, and other programs."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.start = time.perf_counter()
        self.busy = _machine_busy_s()
        self.server, self.children = _cpu(server_pid)
        times = os.times()
        self.driver = times.user + times.system

    def finish(self, direct_engine_s: float = 0.0) -> dict[str, float]:
        wall = time.perf_counter() - self.start
        server, children = _cpu(self.server_pid)
        times = os.times()
        driver = times.user + times.system - self.driver
        server_s, platform_engine_s = server - self.server, children - self.children
        engine_s = platform_engine_s + direct_engine_s
        other = _machine_busy_s() - self.busy - server_s - engine_s - driver
        return {
            "engine_cpu_s": engine_s,
            "server_cpu_s": server_s,
            "driver_cpu_s": driver,
            "other_cpu_pct": 100 * max(0.0, other) / wall if wall > 0 else 0.0,
        }


# ------------------------------------------------------------------------------- set-up


def build_model(out: Path) -> None:
    subprocess.run(
        [str(ENGINE_BIN / "python"), "scripts/make_tiny_model.py", str(out)],
        cwd=benchlib.REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )


def dataset_bytes(rows: int) -> bytes:
    lines = [
        json.dumps(
            {
                "instruction": f"Tell me about topic {i}.",
                "input": "" if i % 4 else f"Keep it short, number {i}.",
                "output": f"Here is what I know about topic {i}: it is the {i}th of many.",
            }
        )
        for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def job_body(name: str, model: Path, dataset_id: int, max_steps: int) -> dict[str, Any]:
    return {
        "name": name,
        "dataset_ids": [dataset_id],
        "base_model": str(model),
        "template": "default",
        "stage": "sft",
        "finetuning_type": "lora",
        "num_train_epochs": None,
        "max_steps": max_steps,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 1,
        "cutoff_len": 64,
        "logging_steps": 1,
        "save_steps": 1_000_000,
        "use_swanlab": False,
        "start": True,
    }


def _timestamp(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


# ------------------------------------------------------------------------------- the runs


def platform_run(
    client: httpx.Client, body: dict[str, Any], server_pid: int, jobs_dir: Path, poll_s: float
) -> dict[str, Any]:
    """One job through the API, followed by polling until it has finished."""
    cpu = CpuRound(server_pid)
    boot0, wall0 = _boottime(), time.time()
    t0 = time.perf_counter()
    response = client.post("/api/training", json=body)
    post_s = time.perf_counter() - t0
    if response.status_code != 201:
        raise RuntimeError(f"create failed: {response.status_code} {response.text}")
    job_id = int(response.json()["id"])
    running_s: float | None = None
    runner_pid: int | None = None
    runner_env: dict[str, str] = {}
    spawn_boot: float | None = None
    engine_nice: int | None = None
    deadline = t0 + RUN_TIMEOUT_S
    requests = 0
    while True:
        job = client.get(f"/api/training/{job_id}").json()
        requests += 1
        seen_s, seen_wall = time.perf_counter() - t0, time.time()
        if running_s is None and job["status"] in ("running", *FINAL):
            running_s = seen_s
        if runner_pid is None and job["status"] == "running":
            runner_pid = _find_runner(server_pid)
            if runner_pid is not None:
                _ENGINE_GROUPS.add(runner_pid)  # the runner leads the engine's group
                spawn_boot = _start_boottime(runner_pid)
                runner_env = _environ(runner_pid)
        if runner_pid is not None and engine_nice is None:
            engines = _children(runner_pid)
            engine_nice = _nice_of(engines[0]) if engines else None
        if job["status"] in FINAL:
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"job {job_id} still {job['status']} after {RUN_TIMEOUT_S:.0f} s")
        time.sleep(poll_s)
    wall_s = seen_s
    cpu_use = cpu.finish()
    if runner_pid is not None and not _group_alive(runner_pid):
        _ENGINE_GROUPS.discard(runner_pid)
    root = jobs_dir / str(job_id)
    exit_info: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        exit_info = json.loads((root / "train.exit.json").read_text())
    ended_at = exit_info.get("ended_at")
    started_at, finished_at = _timestamp(job["started_at"]), _timestamp(job["finished_at"])
    result: dict[str, Any] = {
        "job_id": job_id,
        "status": job["status"],
        "ok": job["status"] == "succeeded" and exit_info.get("returncode") == 0,
        "wall_s": wall_s,
        "post_s": post_s,
        "to_running_seen_s": running_s,
        "to_started_at_s": started_at - wall0 if started_at else None,
        "to_spawn_s": spawn_boot - boot0 if spawn_boot is not None else None,
        "to_finished_at_s": finished_at - wall0 if finished_at else None,
        "engine_s": None,
        "exit_to_finished_at_s": finished_at - ended_at if finished_at and ended_at else None,
        "exit_to_visible_s": seen_wall - ended_at if ended_at else None,
        "job_elapsed_s": finished_at - started_at if finished_at and started_at else None,
        "status_requests": requests,
        "progress_elapsed_s": (job.get("progress") or {}).get("elapsed_s"),
        "steps": (job.get("progress") or {}).get("step"),
        "engine_nice": engine_nice,
        "reason": (job.get("reason") or "").split("\n", 1)[0] or None,
        **cpu_use,
    }
    if spawn_boot is not None and ended_at is not None:
        result["engine_s"] = (ended_at - wall0) - (spawn_boot - boot0)
    result["_env"] = runner_env
    result["_root"] = str(root)
    return result


def direct_run(
    source_yaml: Path,
    folder: Path,
    server_env: dict[str, str],
    engine_env: Any,
    nice: int,
    cores: list[int] | None,
    server_pid: int,
) -> dict[str, Any]:
    """The platform's yaml, pointed at a fresh output folder, run by hand."""
    output, hf_home, mpl_dir = folder / "output", folder / "hf", folder / "mpl"
    for path in (folder, output, hf_home, mpl_dir):
        path.mkdir(parents=True, exist_ok=True)
    args = yaml.safe_load(source_yaml.read_text(encoding="utf-8"))
    args["output_dir"] = str(output)
    args["overwrite_output_dir"] = True
    train_yaml = folder / "train.yaml"
    train_yaml.write_text(yaml.safe_dump(args, sort_keys=False), encoding="utf-8")
    env = engine_env(
        bin_dir=ENGINE_BIN,
        hf_home=hf_home,
        mpl_dir=mpl_dir,
        offline=True,
        llamaboard_workdir=output,
        base=server_env,
    )
    command = ["nice", "-n", str(nice), str(ENGINE_BIN / "llamafactory-cli"), "train"]
    command = benchlib.pinned([*command, str(train_yaml)], cores)
    cpu = CpuRound(server_pid)
    with (folder / "train.log").open("wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _ENGINE_GROUPS.add(proc.pid)
        engine_nice: int | None = None
        # Read the engine's nice level once it has exec'd (nice and taskset exec in place).
        while engine_nice is None and time.perf_counter() - t0 < 5:
            if any(p.endswith("llamafactory-cli") for p in _cmdline(proc.pid)):
                engine_nice = _nice_of(proc.pid)
            else:
                time.sleep(0.01)
        _, status, usage = os.wait4(proc.pid, 0)
        wall_s = time.perf_counter() - t0
    if not _group_alive(proc.pid):
        _ENGINE_GROUPS.discard(proc.pid)
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu_use = cpu.finish(usage.ru_utime + usage.ru_stime)
    saved = (output / "adapter_model.safetensors").is_file()
    return {
        "ok": proc.returncode == 0 and saved,
        "returncode": proc.returncode,
        "wall_s": wall_s,
        "engine_s": wall_s,
        "engine_nice": engine_nice,
        "reason": None if proc.returncode == 0 else benchlib.tail(folder / "train.log", 15),
        **cpu_use,
        "_env": env,
        "_root": str(folder),
    }


def env_differences(
    platform_env: dict[str, str], platform_root: str, direct_env: dict[str, str], direct_root: str
) -> list[str]:
    """Variables that differ between the two engines, once the run folders are equated."""
    if not platform_env:
        return ["the platform engine's environment could not be read"]
    direct = {k: v.replace(direct_root, "<run>") for k, v in direct_env.items()}
    platform = {k: v.replace(platform_root, "<run>") for k, v in platform_env.items()}
    diffs = []
    for key in sorted(set(direct) | set(platform)):
        if direct.get(key) != platform.get(key):
            diffs.append(f"{key}: platform {platform.get(key)!r}, direct {direct.get(key)!r}")
    return diffs


# ---------------------------------------------------------------------------------- report


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"median": float("nan"), "min": float("nan"), "max": float("nan")}
    return {"median": _median(values), "min": min(values), "max": max(values)}


def _ms(value: float | None) -> str:
    return "    n/a" if value is None else f"{value * 1000:7.0f}"


def _public(run: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in run.items() if not k.startswith("_")}


def print_report(
    platform: list[dict[str, Any]], direct: list[dict[str, Any]], ratio: float | None
) -> None:
    print()
    header = (
        f"{'path':<10}{'runs':>5}{'median s':>10}{'min s':>8}{'max s':>8}"
        f"{'engine CPU s':>14}{'server CPU s':>14}"
    )
    print(header)
    print("-" * len(header))
    for name, runs in (("platform", platform), ("direct", direct)):
        wall = _stats([r["wall_s"] for r in runs])
        print(
            f"{name:<10}{len(runs):>5}{wall['median']:>10.2f}{wall['min']:>8.2f}{wall['max']:>8.2f}"
            f"{_median([r['engine_cpu_s'] for r in runs]):>14.2f}"
            f"{_median([r['server_cpu_s'] for r in runs]):>14.2f}"
        )
    if ratio is not None:
        mins = min(r["wall_s"] for r in platform) / min(r["wall_s"] for r in direct)
        print(f"platform / direct: median {ratio:.3f}, min {mins:.3f}")

    def med(key: str) -> float | None:
        values = [r[key] for r in platform if r.get(key) is not None]
        return _median(values) if values else None

    print("\nplatform run, split up (median ms):")
    rows = [
        ("POST answered", "post_s"),
        ("POST -> job started_at (supervisor claimed it)", "to_started_at_s"),
        ("POST -> engine process created", "to_spawn_s"),
        ("POST -> status running seen", "to_running_seen_s"),
        ("engine process exit -> job finished_at", "exit_to_finished_at_s"),
        ("engine process exit -> succeeded seen", "exit_to_visible_s"),
    ]
    for label, key in rows:
        print(f"  {label:<50}{_ms(med(key))}")
    engine_p, engine_d = med("engine_s"), _median([r["engine_s"] for r in direct])
    if engine_p is not None:
        print(
            f"  {'engine process life: platform / direct (s)':<50}"
            f"{engine_p:7.2f} / {engine_d:.2f}  (x{engine_p / engine_d:.3f})"
        )
    elapsed = med("job_elapsed_s")
    if elapsed is not None:
        print(f"  {'job elapsed (finished_at - started_at, s)':<50}{elapsed:7.2f}")
    requests, server_cpu = med("status_requests"), med("server_cpu_s")
    if requests and server_cpu is not None:
        print(
            f"  {'status requests per run; server CPU per run (s)':<50}{requests:7.0f}; "
            f"{server_cpu:.2f} ({1000 * server_cpu / requests:.1f} ms per request, all included)"
        )


def print_runs(platform: list[dict[str, Any]], direct: list[dict[str, Any]]) -> None:
    for index, pair in enumerate(zip(platform, direct, strict=True)):
        for name, run in zip(("platform", "direct"), pair, strict=True):
            print(
                f"  round {index + 1} {name:<9} {run['wall_s']:7.2f} s   engine CPU "
                f"{run['engine_cpu_s']:6.2f} s   server CPU {run['server_cpu_s']:5.2f} s   "
                f"other programs {run['other_cpu_pct']:5.1f}% of a core"
                + ("   (busy machine)" if run["other_cpu_pct"] > BUSY_PCT else "")
            )


# ------------------------------------------------------------------------------------ main


def _disturbed(platform: dict[str, Any], direct: dict[str, Any]) -> bool:
    return bool(max(platform["other_cpu_pct"], direct["other_cpu_pct"]) > BUSY_PCT)


@dataclass
class Measured:
    platform: list[dict[str, Any]] = field(default_factory=list)
    direct: list[dict[str, Any]] = field(default_factory=list)
    warmup: list[dict[str, Any]] = field(default_factory=list)
    env_differences: list[str] = field(default_factory=list)
    engine_version: str | None = None


def upload_dataset(client: httpx.Client) -> int:
    response = client.post(
        "/api/training/datasets/upload",
        files={"file": ("tiny.jsonl", dataset_bytes(DATASET_ROWS), "application/octet-stream")},
        data={"name": "bench alpaca"},
    )
    if response.status_code != 201 or response.json()["status"] != "ready":
        raise RuntimeError(f"upload failed: {response.status_code} {response.text}")
    return int(response.json()["id"])


def measure(args: argparse.Namespace, tmp: Path, cores: list[int] | None) -> Measured:
    """Build the model, start the server, and run the warm-up pairs and the rounds."""
    engine_env, nice = _app_engine_api(cores)
    jobs_dir, model = tmp / "jobs", tmp / "model"
    started = time.perf_counter()
    build_model(model)
    print(f"tiny model built in {time.perf_counter() - started:.1f} s")
    # backend_env() copies os.environ: the training settings reach the server through it.
    os.environ.update(
        {
            "TRAIN_ENGINE_BIN": str(ENGINE_BIN),
            "TRAINING_OUTPUT_DIR": str(jobs_dir),
            "UPLOAD_DIR": str(tmp / "uploads"),
            "TRAIN_MAX_CONCURRENT": "1",
        }
    )
    server_env = benchlib.backend_env(tmp)
    log_path = tmp / "server.log"
    port = benchlib.free_port()
    server = benchlib.start_backend(tmp, port, log_path, cores)
    base_url = f"http://127.0.0.1:{port}"
    out = Measured()
    try:
        benchlib.wait_until_ok(f"{base_url}/health", server, log_path, "server")
        token = benchlib.sign_in(base_url)
        with httpx.Client(
            base_url=base_url,
            timeout=benchlib.API_TIMEOUT_S,
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            engine = client.get("/api/training/engine").json()
            if not engine.get("available"):
                raise RuntimeError(f"the server sees no engine: {engine}")
            out.engine_version = engine.get("version")
            dataset_id = upload_dataset(client)
            index, clean = 0, 0
            limit = args.warmup + args.rounds + args.extra_rounds
            while clean < args.rounds and index < limit:
                warm = index < args.warmup
                quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else None
                body = job_body(f"overhead {index}", model, dataset_id, args.max_steps)
                p = platform_run(client, body, server.pid, jobs_dir, args.poll_s)
                if not p["ok"]:
                    raise RuntimeError(f"platform job failed: {p['status']} {p['reason']}")
                p["busy_before_cores"] = quiet
                quiet = wait_for_quiet(args.quiet_wait) if args.quiet_wait > 0 else None
                d = direct_run(
                    Path(p["_root"]) / "train.yaml",
                    tmp / f"direct-{index}",
                    server_env,
                    engine_env,
                    nice,
                    cores,
                    server.pid,
                )
                if not d["ok"]:
                    raise RuntimeError(f"direct run failed ({d['returncode']}):\n{d['reason']}")
                d["busy_before_cores"] = quiet
                disturbed = _disturbed(p, d)
                label = "warm-up" if warm else f"round {index - args.warmup + 1}"
                print(
                    f"  {label:<9} platform {p['wall_s']:6.2f} s   direct {d['wall_s']:6.2f} s   "
                    f"x{p['wall_s'] / d['wall_s']:.3f}   ({p['steps']} steps; other programs "
                    f"{p['other_cpu_pct']:.0f}% / {d['other_cpu_pct']:.0f}% of a core"
                    + (", disturbed: not counted)" if disturbed and not warm else ")"),
                    flush=True,
                )
                if index == 0:
                    out.env_differences = env_differences(
                        p["_env"], p["_root"], d["_env"], d["_root"]
                    )
                    if p["engine_nice"] != d["engine_nice"]:
                        out.env_differences.append(
                            f"nice: platform {p['engine_nice']}, direct {d['engine_nice']}"
                        )
                if warm:
                    out.warmup.extend([_public(p), _public(d)])
                else:
                    out.platform.append(_public(p))
                    out.direct.append(_public(d))
                    clean += not disturbed
                index += 1
    finally:
        stop_engines()
        benchlib.stop_process(server)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds", type=int, default=5, help="undisturbed platform + direct pairs wanted (5)"
    )
    parser.add_argument(
        "--extra-rounds",
        type=int,
        help="further pairs allowed in place of disturbed ones (default: as many as --rounds)",
    )
    parser.add_argument("--max-steps", type=int, default=1000, help="steps per job (1000)")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded pairs first (1)")
    parser.add_argument("--cpus", help="pin the server and both engines to these CPUs, e.g. 0-1")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=120.0,
        help="before each run, wait up to this many seconds for a quiet machine (120; 0: no)",
    )
    parser.add_argument(
        "--poll-s", type=float, default=POLL_S, help="pause between status requests (0.1)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "training_overhead.json")
    parser.add_argument("--quick", action="store_true", help="1 round of 200 steps")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.max_steps = 1, 200
    if args.extra_rounds is None:
        args.extra_rounds = args.rounds
    if args.rounds < 1 or args.max_steps < 1 or min(args.warmup, args.extra_rounds) < 0:
        parser.error("--rounds and --max-steps must be at least 1, the others at least 0")
    # A plain kill (or `timeout`) must stop the engines and the server too (see measure()).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    cores = benchlib.parse_cpus(args.cpus) if args.cpus else None
    nice = _app_engine_api()[1]

    report: dict[str, Any] = {
        "benchmark": "training_overhead",
        **benchlib.platform_info(),
        "settings": {
            "rounds": args.rounds,
            "extra_rounds": args.extra_rounds,
            "warmup_pairs": args.warmup,
            "max_steps": args.max_steps,
            "dataset_rows": DATASET_ROWS,
            "poll_s": args.poll_s,
            "quiet_wait_s": args.quiet_wait,
            "quiet_below_cores": QUIET_CORES,
            "engine_nice": nice,
            "cpus": cores or "all (not pinned)",
        },
        "target_ratio": TARGET_RATIO,
    }
    cli = ENGINE_BIN / "llamafactory-cli"
    if not cli.is_file():
        print(f"n/a  training engine missing ({cli} not found): run `make train-env`")
        report.update(passed=None, missing=str(cli))
        benchlib.write_json(args.out, report)
        return 0

    print(
        f"training overhead: tiny Qwen2 LoRA SFT, {args.max_steps} steps, {args.rounds} rounds "
        f"(+{args.warmup} warm-up), engines at nice {nice}, CPUs "
        + (",".join(map(str, cores)) if cores else f"all {os.cpu_count()} (not pinned)")
    )
    with tempfile.TemporaryDirectory(prefix="bench-training-overhead-") as tmp_name:
        got = measure(args, Path(tmp_name), cores)

    pairs = list(zip(got.platform, got.direct, strict=True))
    clean = [(p, d) for p, d in pairs if not _disturbed(p, d)]
    platform_runs, direct_runs = [p for p, _ in clean], [d for _, d in clean]
    needed = min(MIN_CLEAN, args.rounds)
    ratio_all = _median([p["wall_s"] for p, _ in pairs]) / _median([d["wall_s"] for _, d in pairs])
    ratio: float | None = None
    if len(clean) >= needed:
        ratio = _median([r["wall_s"] for r in platform_runs]) / _median(
            [r["wall_s"] for r in direct_runs]
        )
        print(f"\n{len(clean)} undisturbed rounds of {len(pairs)}:")
        print_report(platform_runs, direct_runs, ratio)
    print("\nper run (all rounds):")
    print_runs(got.platform, got.direct)
    print()
    if got.env_differences:
        print("engine environment differences (platform vs direct):")
        for line in got.env_differences:
            print(f"  {line}")
    else:
        print("engine environment and nice level: identical on both paths")
    if len(clean) < len(pairs):
        print(
            f"WARNING: in {len(pairs) - len(clean)} of {len(pairs)} rounds other programs used "
            f"more than {BUSY_PCT:.0f}% of a core during a run. The engines run at nice {nice}: "
            f"such a run measures the other programs, so those rounds are not counted "
            f"(all rounds: x{ratio_all:.3f})"
        )
    passed = None if ratio is None else ratio <= TARGET_RATIO
    if ratio is None:
        print(
            f"\nn/a  inconclusive: only {len(clean)} undisturbed rounds (at least {needed} "
            f"needed); run it again on a quieter machine"
        )
    else:
        print(
            f"\n{benchlib.verdict(passed)}  platform wall time <= {TARGET_RATIO:.2f}x direct "
            f"(median of {len(clean)} undisturbed rounds: {ratio:.3f}x)"
        )

    def summary(runs: list[dict[str, Any]], *keys: str) -> dict[str, dict[str, float]]:
        return {key: _stats([r[key] for r in runs if r.get(key) is not None]) for key in keys}

    report.update(
        {
            "engine_version": got.engine_version,
            "passed": passed,
            "ratio_median": ratio,
            "ratio_min": min(r["wall_s"] for r in platform_runs)
            / min(r["wall_s"] for r in direct_runs)
            if clean
            else None,
            "ratio_median_all_rounds": ratio_all,
            "rounds_run": len(pairs),
            "rounds_undisturbed": len(clean),
            "platform": summary(
                platform_runs,
                "wall_s",
                "engine_s",
                "to_running_seen_s",
                "to_spawn_s",
                "exit_to_finished_at_s",
                "exit_to_visible_s",
                "server_cpu_s",
                "engine_cpu_s",
            ),
            "direct": summary(direct_runs, "wall_s", "engine_cpu_s"),
            "rounds": [
                {"platform": p, "direct": d, "disturbed": _disturbed(p, d)} for p, d in pairs
            ],
            "warmup_runs": got.warmup,
            "env_differences": got.env_differences,
        }
    )
    benchlib.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
