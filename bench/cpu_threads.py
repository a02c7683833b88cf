"""Torch thread count of a CPU training run, quiet and beside a busy core.

Question: the platform starts every training engine at nice 19 so that the web server stays
responsive. On a CPU-only host torch uses one intra-op thread per core, and those threads wait
for each other at every operation. What happens to the run when one core is kept busy by a
normal-priority program (the server relaying chats, a notebook, a compile), and what does
TRAIN_CPU_THREADS=auto (usable cores - 1, at least 1) cost when the machine is quiet?

Set-up: a temporary folder holds a model built offline by scripts/make_tiny_model.py (sizes:
"tiny", hidden 64 x 2 layers, the one the tests use; "small", hidden 512 x 4 layers, about 11 M
parameters, where compute rather than start-up dominates a step) and a 64-row alpaca dataset.
Each run is a LoRA SFT (batch 2, cutoff 64, logging every step, no checkpoint) started through
the platform's own engine layer (app.engines.start_train: `_runner.py`, nice 19, the engine
environment the supervisor gives) with OMP_NUM_THREADS / MKL_NUM_THREADS set to each value of
`--threads` ("default" leaves them unset: torch's one thread per core).

Loads: "quiet", and "busy": one `python -c 'while True: pass'` at nice 0 started before the
engine and stopped after it. Runs are interleaved (every thread setting once per load, then the
next round) so that drift falls on all alike. A run that has not finished after `--timeout`
seconds is stopped; its rate still counts from the steps it logged.

Figure: steps per second between the first and the last step the engine logged, as this script
saw the lines appear in trainer_log.jsonl (polled every 50 ms), so that the 5-10 s of importing
torch and loading the model, the same for every setting, do not dilute the difference; and the
wall time of the whole run. The verdict compares, per model size, the
median rate of the auto setting with the default: auto must be at least 3x faster beside a
busy core and lose at most 50% when quiet (it gives up a whole core on a 2-core machine).
Prints a table and writes bench/results/cpu_threads.json.

    .venv/bin/python bench/cpu_threads.py                 # 3 rounds, tiny + small, ~10 min
    .venv/bin/python bench/cpu_threads.py --quick         # 1 round, tiny, 30 steps
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from benchlib import BACKEND, REPO, platform_info, tail, verdict, write_json

sys.path.insert(0, str(BACKEND))
os.environ.setdefault("MODELTRAIN_ENV_FILE", "")

from app.engines import (
    JobLayout,
    TrainerLogReader,
    TrainSpec,
    start_train,
    stop,
    wait,
    write_dataset_info,
)
from app.engines.llamafactory import train_cpu_threads, usable_cores
from app.engines.trainer_log import TRAINER_LOG

TRAIN_BIN = REPO / ".venv-train" / "bin"
RESULTS = REPO / "bench" / "results" / "cpu_threads.json"
SIZES = {"tiny": (64, 2), "small": (512, 4)}
BUSY_SPEEDUP_TARGET = 3.0
QUIET_LOSS_LIMIT = 0.5


def build_model(out: Path, size: str) -> None:
    hidden, layers = SIZES[size]
    subprocess.run(
        [
            str(TRAIN_BIN / "python"),
            "scripts/make_tiny_model.py",
            str(out),
            "--hidden-size",
            str(hidden),
            "--layers",
            str(layers),
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
        timeout=600,
    )


def write_dataset(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "instruction": f"Tell me about topic {i}.",
            "input": "",
            "output": f"Here is what I know about topic {i}: it is the {i}th of many.",
        }
        for i in range(64)
    ]
    (folder / "bench.json").write_text(json.dumps(rows), encoding="utf-8")
    write_dataset_info(folder, {"bench": {"file_name": "bench.json"}})


def start_busy() -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def one_run(
    root: Path, model: Path, threads: int | None, steps: int, timeout_s: float
) -> dict[str, Any]:
    layout = JobLayout(root)
    write_dataset(layout.data_dir)
    spec = TrainSpec(
        base_model=str(model),
        template="default",
        datasets=("bench",),
        dataset_dir=layout.data_dir,
        output_dir=layout.output_dir,
        num_train_epochs=None,
        max_steps=steps,
        learning_rate=1e-3,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=1,
        cutoff_len=64,
        logging_steps=1,
        save_steps=1_000_000,
    )
    began = time.perf_counter()
    handle = await start_train(spec, layout, bin_dir=TRAIN_BIN, cpu_threads=threads)
    reader = TrainerLogReader(layout.output_dir / TRAINER_LOG)
    seen: dict[int, float] = {}  # step -> when this script first saw it logged

    def read_steps() -> None:
        for record in reader.read_new():
            if "loss" in record:
                seen.setdefault(int(record["current_steps"]), time.perf_counter())

    waiter = asyncio.ensure_future(wait(handle, poll_s=0.05))
    timed_out = False
    while not waiter.done():
        read_steps()
        if time.perf_counter() - began > timeout_s:
            await stop(handle, grace_s=2)
            timed_out = True
            break
        await asyncio.sleep(0.05)
    exit_code = None if timed_out else await waiter
    if timed_out:
        waiter.cancel()
    wall_s = time.perf_counter() - began
    read_steps()
    steps_seen = sorted(seen)
    rate = None
    if len(steps_seen) >= 2 and seen[steps_seen[-1]] > seen[steps_seen[0]]:
        rate = (steps_seen[-1] - steps_seen[0]) / (seen[steps_seen[-1]] - seen[steps_seen[0]])
    return {
        "ok": exit_code == 0 and not timed_out,
        "exit_code": exit_code,
        "timed_out": timed_out,
        "steps_done": steps_seen[-1] if steps_seen else 0,
        "wall_s": wall_s,
        "steps_per_s": rate,
        "log_tail": None if exit_code == 0 else tail(layout.train_log, 15),
    }


def label(threads: int | None) -> str:
    return "default" if threads is None else str(threads)


async def measure(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    cores = usable_cores()
    auto = train_cpu_threads(0, gpu_count=0, cores=cores)
    settings: list[int | None] = []
    for item in args.threads.split(","):
        item = item.strip()
        value = None if item == "default" else auto if item == "auto" else int(item)
        if value not in settings:
            settings.append(value)
    runs: list[dict[str, Any]] = []
    counter = 0
    for size in args.sizes.split(","):
        model = tmp / f"model-{size}"
        build_model(model, size)
        steps = args.steps if size == "tiny" else max(10, args.steps // 3)
        for round_no in range(1, args.rounds + 1):
            for load in ("quiet", "busy"):
                for threads in settings:
                    counter += 1
                    busy = start_busy() if load == "busy" else None
                    try:
                        run = await one_run(
                            tmp / "runs" / str(counter), model, threads, steps, args.timeout
                        )
                    finally:
                        if busy is not None:
                            busy.kill()
                            busy.wait()
                    run.update(
                        size=size,
                        load=load,
                        threads=label(threads),
                        is_auto=threads == auto,
                        round=round_no,
                        steps=steps,
                    )
                    runs.append(run)
                    rate = run["steps_per_s"]
                    print(
                        f"  {size:<6}{load:<7}threads {label(threads):<8}round {round_no}: "
                        f"{run['steps_done']}/{steps} steps, wall {run['wall_s']:.1f} s, "
                        f"{'-' if rate is None else f'{rate:.2f}'} steps/s"
                        + (" (timed out)" if run["timed_out"] else "")
                        + ("" if run["ok"] or run["timed_out"] else " FAILED"),
                        flush=True,
                    )
    return runs


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    keys = sorted({(r["size"], r["load"], r["threads"]) for r in runs}, key=str)
    for size, load, threads in keys:
        group = [r for r in runs if (r["size"], r["load"], r["threads"]) == (size, load, threads)]
        rates = [r["steps_per_s"] for r in group if r["steps_per_s"] is not None]
        rows.append(
            {
                "size": size,
                "load": load,
                "threads": threads,
                "is_auto": group[0]["is_auto"],
                "runs": len(group),
                "timed_out": sum(r["timed_out"] for r in group),
                "median_steps_per_s": statistics.median(rates) if rates else None,
                "median_wall_s": statistics.median(r["wall_s"] for r in group),
            }
        )
    return rows


def verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model size: the auto setting's median rate against the default's, busy and quiet."""

    def rate(size: str, load: str, auto: bool) -> float | None:
        for r in rows:
            if (r["size"], r["load"]) != (size, load):
                continue
            if (auto and r["is_auto"] and r["threads"] != "default") or (
                not auto and r["threads"] == "default"
            ):
                return cast(float | None, r["median_steps_per_s"])
        return None

    out = []
    for size in dict.fromkeys(r["size"] for r in rows):
        busy_auto, busy_default = rate(size, "busy", True), rate(size, "busy", False)
        quiet_auto, quiet_default = rate(size, "quiet", True), rate(size, "quiet", False)
        busy_gain = busy_auto / busy_default if busy_auto and busy_default else None
        quiet_ratio = quiet_auto / quiet_default if quiet_auto and quiet_default else None
        passed = (
            None
            if busy_gain is None or quiet_ratio is None
            else busy_gain >= BUSY_SPEEDUP_TARGET and quiet_ratio >= 1 - QUIET_LOSS_LIMIT
        )
        out.append(
            {"size": size, "busy_speedup": busy_gain, "quiet_ratio": quiet_ratio, "passed": passed}
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="tiny,small", help="tiny,small")
    parser.add_argument("--threads", default="default,auto", help="default,auto,1,2,...")
    parser.add_argument("--steps", type=int, default=150, help="steps for tiny (small: a third)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="1 round, tiny, 30 steps")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.steps, args.rounds = "tiny", 30, 1
    unknown = set(args.sizes.split(",")) - set(SIZES)
    if unknown:
        parser.error(f"unknown sizes: {', '.join(sorted(unknown))}")
    if not (TRAIN_BIN / "llamafactory-cli").is_file():
        print(f"no training engine at {TRAIN_BIN}: run `make train-env` first", file=sys.stderr)
        return 0

    cores = usable_cores()
    auto = train_cpu_threads(0, gpu_count=0, cores=cores)
    print(f"cpu threads: {cores} usable cores, auto = {auto}; engine at nice 19")
    with tempfile.TemporaryDirectory(prefix="bench-threads-") as tmp:
        runs = asyncio.run(measure(args, Path(tmp)))
    rows = summarise(runs)
    checks = verdicts(rows)

    print()
    header = f"{'size':<7}{'load':<7}{'threads':<10}{'runs':>5}{'steps/s':>10}{'wall s':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        name = r["threads"] + (" (auto)" if r["is_auto"] else "")
        rate = r["median_steps_per_s"]
        print(
            f"{r['size']:<7}{r['load']:<7}{name:<10}{r['runs']:>5}"
            f"{'-' if rate is None else f'{rate:.2f}':>10}{r['median_wall_s']:>9.1f}"
            + (f"  ({r['timed_out']} timed out)" if r["timed_out"] else "")
        )
    print()
    for c in checks:
        gain, ratio = c["busy_speedup"], c["quiet_ratio"]
        print(
            f"{c['size']}: beside a busy core auto is "
            f"{'-' if gain is None else f'{gain:.1f}x'} the default's rate "
            f"(target >= {BUSY_SPEEDUP_TARGET:.0f}x); quiet it runs at "
            f"{'-' if ratio is None else f'{ratio:.2f}x'} (limit >= {1 - QUIET_LOSS_LIMIT:.2f}x)"
            f"  {verdict(c['passed'])}"
        )
    write_json(
        args.out,
        {
            "benchmark": "cpu_threads",
            "platform": platform_info(),
            "usable_cores": cores,
            "auto_threads": auto,
            "parameters": {
                "sizes": args.sizes,
                "threads": args.threads,
                "steps": args.steps,
                "rounds": args.rounds,
                "timeout_s": args.timeout,
            },
            "summary": rows,
            "verdicts": checks,
            "runs": runs,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
