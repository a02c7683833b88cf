"""How much latency does the chat relay add to a streamed answer, and how does LiteLLM compare?

Three ways to the same mock upstream stream (`chunks-N-MS`): straight to the mock ("direct"),
through `POST /api/chat/sessions/{id}/stream` of the real server ("modeltrain": a fresh session
per stream, so every stream also writes its user turn and its answer), and through LiteLLM's
proxy ("litellm", in its own venv, bench/.venv-litellm, created on first use). At 1, 8 and 32
concurrent streams, R interleaved rounds of one phase per path measure time to the first content
delta (TTFT) and to `data: [DONE]` (total). "Added" is a proxy's percentile minus the direct one.
Targets: at 32 streams our added TTFT p50 <= 5 ms and p99 <= 15 ms; at every level our added
TTFT p50 and total p50 at most 0.5x LiteLLM's.

    .venv/bin/python bench/chat_relay.py                 # 10 rounds per level, ~3-5 min
    .venv/bin/python bench/chat_relay.py --quick         # 2 rounds, fewer streams, a smoke check
    .venv/bin/python bench/chat_relay.py --no-litellm    # without the comparison

A benchmark, not a test: it exits 0 whether or not the targets are met, and prints FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    REPO,
    CpuMeter,
    Pinning,
    StreamRecord,
    add_placement_args,
    create_model_config,
    create_sessions,
    free_port,
    launch,
    pinning_from,
    platform_info,
    read_sse,
    sign_in,
    start_backend,
    start_mock,
    stop_process,
    summarise,
    verdict,
    wait_until_ok,
    write_json,
)

DEFAULT_OUT = REPO / "bench" / "results" / "chat_relay.json"
LITELLM_VENV = REPO / "bench" / ".venv-litellm"
LITELLM_REQUIREMENTS = REPO / "bench" / "requirements-litellm.txt"
LITELLM_STARTUP_TIMEOUT_S = 300.0
LITELLM_MASTER_KEY = "sk-bench-litellm-master"
UPSTREAM_KEY = "sk-bench-upstream"  # the mock takes any key; every path sends one
# LiteLLM's documented switches that keep it off the network (no telemetry, no downloads).
LITELLM_OFFLINE_ENV = {
    "LITELLM_TELEMETRY_DISABLED": "true",
    "LITELLM_LOCAL_MODEL_COST_MAP": "true",
    "LITELLM_LOCAL_BLOG_POSTS": "true",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "true",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "true",
    "DO_NOT_TRACK": "1",
}

SIDES = ("direct", "modeltrain", "litellm")
PROXIES = ("modeltrain", "litellm")
LEVELS = (1, 8, 32)
# Streams each concurrent worker reads per phase: about 200-600 samples per path and level.
STREAMS_PER_WORKER = {1: 20, 8: 5, 32: 4}
QUICK_STREAMS_PER_WORKER = {1: 5, 8: 2, 32: 2}
# A stream's expected length is chunks x interval plus this; the workers' start offsets
# spread over it.
STREAM_SETUP_MS = 10.0
TARGET_LEVEL = 32
TARGET_TTFT_P50_MS = 5.0
TARGET_TTFT_P99_MS = 15.0
TARGET_VS_LITELLM = 0.5
OTHER_CPU_WARN_PCT = 10.0
PROMPT = "Stream me some tokens, please."


# --------------------------------------------------------------------------- measurements


@dataclass
class Sample:
    """One stream: ms to the first content delta and to [DONE], or what went wrong."""

    ttft_ms: float | None
    total_ms: float | None
    chunks: int
    error: str | None


@dataclass
class Target:
    """Where a path's requests go."""

    port: int
    path: str
    headers: dict[str, str]
    body: bytes | None  # None: per-stream body (our sessions)


@dataclass
class Tally:
    samples: list[Sample] = field(default_factory=list)
    proxy_cpu_s: float = 0.0
    cpu_rows: list[dict[str, float]] = field(default_factory=list)


def analyse(side: str, record: StreamRecord, chunks: int) -> Sample:
    """TTFT to the first non-empty content delta (ours: the first `content` event, not the
    saved user turn), total to `data: [DONE]`; anything short of a full answer is an error."""
    if record.error or record.status != 200:
        detail = record.error or f"HTTP {record.status}: {record.body[:200]!r}"
        return Sample(None, None, 0, detail)
    first: float | None = None
    done: float | None = None
    count = 0
    error: str | None = None
    for at, payload in record.payloads():
        if payload == b"[DONE]":
            done = at
            continue
        if payload == b"[ERROR]":
            error = error or "stream ended with [ERROR]"
            continue
        event = json.loads(payload)
        if side == "modeltrain":
            kind = event.get("type")
            is_content = kind == "content" and bool(event.get("text"))
            if kind == "error":
                error = f"error event: {event.get('code')}: {event.get('message')}"
        else:
            if "error" in event:
                error = f"error chunk: {event['error']}"
            choices = event.get("choices") or []
            is_content = bool(choices and (choices[0].get("delta") or {}).get("content"))
        if is_content:
            count += 1
            if first is None:
                first = at
    if error is None and done is None:
        error = "no [DONE]"
    if error is None and count != chunks:
        error = f"{count} content chunks instead of {chunks}"
    if error is not None or first is None or done is None:
        return Sample(None, None, count, error or "no content")
    return Sample((first - record.start) * 1000, (done - record.start) * 1000, count, None)


async def run_phase(
    side: str,
    concurrency: int,
    per_worker: int,
    target: Target,
    sessions: list[int],
    chunks: int,
    spacing_s: float,
) -> list[Sample]:
    """`concurrency` workers, each reading `per_worker` streams one after another. Worker i
    starts i * spacing_s late, so that arrivals are spread over a stream's length as from
    independent users, not a burst of `concurrency` requests in the same millisecond each
    time (streams of equal length would otherwise keep the workers in lockstep)."""
    samples: list[Sample] = []

    async def worker(index: int) -> None:
        await asyncio.sleep(index * spacing_s)
        for _ in range(per_worker):
            if target.body is None:
                session_id = sessions.pop()
                path = target.path.format(session_id=session_id)
                body = json.dumps({"content": PROMPT}).encode()
            else:
                path, body = target.path, target.body
            record = await read_sse("127.0.0.1", target.port, path, body, target.headers)
            samples.append(analyse(side, record, chunks))

    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return samples


async def run_all(
    targets: dict[str, Target],
    sessions: list[int],
    levels: list[int],
    rounds: int,
    per_worker: dict[int, int],
    chunks: int,
    stream_s: float,
    meter: CpuMeter,
) -> dict[int, dict[str, Tally]]:
    tallies: dict[int, dict[str, Tally]] = {}
    sides = [side for side in SIDES if side in targets]
    for level in levels:
        tallies[level] = {side: Tally() for side in sides}
        spacing = stream_s / level
        for side in sides:  # warm-up, unrecorded: connections, caches, first-call imports
            await run_phase(side, level, 1, targets[side], sessions, chunks, spacing)
        for round_no in range(rounds):
            # Rotate the order so that no path always follows the same one.
            order = sides[round_no % len(sides) :] + sides[: round_no % len(sides)]
            for side in order:
                gc.collect()  # the driver's garbage from the last phase is not this one's cost
                before = meter.snapshot()
                samples = await run_phase(
                    side, level, per_worker[level], targets[side], sessions, chunks, spacing
                )
                after = meter.snapshot()
                tally = tallies[level][side]
                tally.samples.extend(samples)
                cpu = CpuMeter.percent(before, after)
                if cpu is not None:
                    tally.cpu_rows.append(cpu)
                if before is not None and after is not None and side in before.processes:
                    tally.proxy_cpu_s += after.processes[side] - before.processes[side]
    return tallies


# --------------------------------------------------------------------------- LiteLLM


def ensure_litellm_venv() -> Path:
    """bench/.venv-litellm with the pinned `litellm[proxy]`, created when missing."""
    executable = LITELLM_VENV / "bin" / "litellm"
    if executable.exists():
        return executable
    print(f"creating {LITELLM_VENV} with {LITELLM_REQUIREMENTS.name} (a few minutes, once)")
    subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
    pip = [str(LITELLM_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "-r", str(LITELLM_REQUIREMENTS)], check=True)
    if not executable.exists():
        raise RuntimeError(f"{executable} missing after installing {LITELLM_REQUIREMENTS}")
    return executable


def litellm_version() -> str:
    result = subprocess.run(
        [
            str(LITELLM_VENV / "bin" / "python"),
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or "unknown"


def start_litellm(
    executable: Path, tmp: Path, port: int, mock_url: str, model: str, cores: list[int] | None
) -> subprocess.Popen[bytes]:
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"openai/{model}",
                    "api_base": mock_url + "/v1",
                    "api_key": UPSTREAM_KEY,
                },
            }
        ]
    }
    config_path = tmp / "litellm.yaml"
    config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    env = {
        **os.environ,
        **LITELLM_OFFLINE_ENV,
        "LITELLM_MASTER_KEY": LITELLM_MASTER_KEY,
        "LITELLM_LOG": "WARNING",  # also lifts uvicorn to WARNING: no access log, like ours
    }
    env.pop("DATABASE_URL", None)  # no spend-log database: the proxy as a pure relay
    command = [
        str(executable),
        "--config",
        str(config_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--num_workers",
        "1",
    ]
    return launch(command, tmp / "litellm.log", cwd=tmp, env=env, cores=cores)


# --------------------------------------------------------------------------- report


def build_report(
    tallies: dict[int, dict[str, Tally]],
    args: argparse.Namespace,
    pinning: Pinning,
    litellm: dict[str, Any],
    per_worker: dict[int, int],
) -> dict[str, Any]:
    levels: dict[str, Any] = {}
    checks: list[dict[str, Any]] = []
    for level, by_side in tallies.items():
        entry: dict[str, Any] = {"sides": {}, "added": {}}
        for side, tally in by_side.items():
            good = [s for s in tally.samples if s.error is None]
            errors: dict[str, int] = defaultdict(int)
            for s in tally.samples:
                if s.error is not None:
                    errors[s.error[:120]] += 1
            streams = len(tally.samples)
            cpu_avg: dict[str, float] = {}
            for row in tally.cpu_rows:
                for key, value in row.items():
                    cpu_avg[key] = cpu_avg.get(key, 0.0) + value / len(tally.cpu_rows)
            entry["sides"][side] = {
                "streams": streams,
                "errors": sum(errors.values()),
                "error_kinds": dict(errors),
                "ttft": summarise([s.ttft_ms for s in good if s.ttft_ms is not None]),
                "total": summarise([s.total_ms for s in good if s.total_ms is not None]),
                "proxy_cpu_ms_per_stream": (
                    1000 * tally.proxy_cpu_s / streams if side in PROXIES and streams else None
                ),
                "cpu_pct": cpu_avg or None,
            }
        direct = entry["sides"]["direct"]
        for side in PROXIES:
            if side not in entry["sides"]:
                continue
            mine = entry["sides"][side]
            entry["added"][side] = {
                f"{metric}_{pct}_ms": mine[metric][f"{pct}_ms"] - direct[metric][f"{pct}_ms"]
                for metric in ("ttft", "total")
                for pct in ("p50", "p99")
            }
        ours = entry["added"]["modeltrain"]
        if level == TARGET_LEVEL:
            checks.append(
                {
                    "check": f"added TTFT p50 at {level} <= {TARGET_TTFT_P50_MS:g} ms",
                    "value": ours["ttft_p50_ms"],
                    "pass": ours["ttft_p50_ms"] <= TARGET_TTFT_P50_MS,
                }
            )
            checks.append(
                {
                    "check": f"added TTFT p99 at {level} <= {TARGET_TTFT_P99_MS:g} ms",
                    "value": ours["ttft_p99_ms"],
                    "pass": ours["ttft_p99_ms"] <= TARGET_TTFT_P99_MS,
                }
            )
        theirs = entry["added"].get("litellm")
        for metric in ("ttft", "total"):
            key = f"{metric}_p50_ms"
            name = f"added {'TTFT' if metric == 'ttft' else 'total'} p50 at {level}"
            name += f" <= {TARGET_VS_LITELLM:g}x LiteLLM's"
            if theirs is None:
                checks.append({"check": name, "value": None, "pass": None})
                continue
            ratio = ours[key] / theirs[key] if theirs[key] > 0 else None
            checks.append(
                {
                    "check": name,
                    "value": ratio,
                    "ours_ms": ours[key],
                    "litellm_ms": theirs[key],
                    "pass": ours[key] <= TARGET_VS_LITELLM * theirs[key],
                }
            )
        levels[str(level)] = entry
    error_total = sum(
        side["errors"] for entry in levels.values() for side in entry["sides"].values()
    )
    checks.append({"check": "no failed stream", "value": error_total, "pass": error_total == 0})
    decided = [c["pass"] for c in checks if c["pass"] is not None]
    return {
        "benchmark": "chat_relay",
        **platform_info(),
        "pinning": {
            "used": pinning.used,
            "proxy_cores": pinning.server_cores,
            "driver_and_mock_cores": pinning.driver_cores,
            "how": pinning.reason,
        },
        "settings": {
            "levels": list(tallies),
            "rounds": args.rounds,
            "streams_per_worker": {str(k): v for k, v in per_worker.items()},
            "chunks": args.chunks,
            "interval_ms": args.interval_ms,
            "model": f"chunks-{args.chunks}-{args.interval_ms:g}",
            "arrivals": (
                "closed loop: C workers, each reading its streams back to back; worker i"
                f" starts i*T/C late, T = chunks*interval + {STREAM_SETUP_MS:g} ms"
            ),
            "percentile_method": "linear interpolation between closest ranks (numpy 'linear')",
        },
        "litellm": litellm,
        "levels": levels,
        "checks": checks,
        "pass": all(decided),
        "load_average_after": list(os.getloadavg()),
    }


def _fmt(value: float | None, spec: str = "8.2f") -> str:
    return format(value, spec) if value is not None else "     n/a"


def print_report(report: dict[str, Any]) -> None:
    settings = report["settings"]
    pin = report["pinning"]
    if pin["used"]:
        pinned = (
            f"proxies on CPU {pin['proxy_cores']}, mock and driver on CPU"
            f" {pin['driver_and_mock_cores']}"
        )
    else:
        pinned = f"no ({pin['how']})"
    lite = report["litellm"]
    print(
        f"\nchat_relay: model {settings['model']}, {settings['rounds']} interleaved rounds per"
        f" level, {report['cpu_count']} CPUs, pinning: {pinned}"
    )
    if lite["measured"]:
        print(f"LiteLLM {lite['version']} (started in {lite['startup_s']:.1f} s)")
    else:
        print(f"LiteLLM: not measured ({lite['reason']})")
    print(
        f"\n{'conc':>4} {'path':<10} {'streams':>7} {'err':>4}"
        f" {'TTFT p50':>8} {'p90':>7} {'p99':>7} {'max':>7}"
        f" {'total p50':>9} {'p99':>7}  {'CPU ms/stream':>13}"
    )
    for level, entry in report["levels"].items():
        for side, s in entry["sides"].items():
            cpu = s["proxy_cpu_ms_per_stream"]
            print(
                f"{level:>4} {side:<10} {s['streams']:>7} {s['errors']:>4}"
                f" {s['ttft']['p50_ms']:>8.2f} {s['ttft']['p90_ms']:>7.2f}"
                f" {s['ttft']['p99_ms']:>7.2f} {s['ttft']['max_ms']:>7.2f}"
                f" {s['total']['p50_ms']:>9.2f} {s['total']['p99_ms']:>7.2f}"
                f"  {_fmt(cpu, '13.2f') if cpu is not None else '':>13}"
            )
        for side, added in entry["added"].items():
            print(
                f"{level:>4} {'+' + side:<10} {'added':>12}"
                f" {added['ttft_p50_ms']:>+8.2f} {'':>7} {added['ttft_p99_ms']:>+7.2f} {'':>7}"
                f" {added['total_p50_ms']:>+9.2f} {added['total_p99_ms']:>+7.2f}"
            )
        print()
    print("checks:")
    for check in report["checks"]:
        value = check["value"]
        if "ours_ms" in check:
            shown = f"ours {check['ours_ms']:+.2f} ms vs LiteLLM {check['litellm_ms']:+.2f} ms"
            if value is not None:
                shown += f" (ratio {value:.2f})"
        elif value is None:
            shown = "not measured"
        elif isinstance(value, float):
            shown = f"{value:+.2f} ms"
        else:
            shown = str(value)
        print(f"  {verdict(check['pass']):<4}  {check['check']:<48} {shown}")
    disturbed = [
        f"{level}/{side}"
        for level, entry in report["levels"].items()
        for side, s in entry["sides"].items()
        if s["cpu_pct"] and s["cpu_pct"].get("other", 0.0) > OTHER_CPU_WARN_PCT
    ]
    if disturbed:
        print(
            f"WARNING: other programs took more than {OTHER_CPU_WARN_PCT:g}% of a core during"
            f" {', '.join(disturbed)}: tail figures are disturbed; rerun on a quiet machine"
        )
    for level, entry in report["levels"].items():
        for side, s in entry["sides"].items():
            for kind, count in s["error_kinds"].items():
                print(f"errors at {level}/{side}: {count} x {kind}")
    print(f"\n{'PASS' if report['pass'] else 'FAIL'}: chat relay overhead")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds per level (10)")
    parser.add_argument(
        "--levels", default="1,8,32", help="concurrent streams, comma-separated (1,8,32)"
    )
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per stream (20)")
    parser.add_argument(
        "--interval-ms", type=float, default=5.0, help="pause between chunks in ms (5)"
    )
    parser.add_argument("--no-litellm", action="store_true", help="skip the LiteLLM comparison")
    add_placement_args(parser, DEFAULT_OUT, server="our server and LiteLLM")
    parser.add_argument("--quick", action="store_true", help="2 rounds, fewer streams (smoke)")
    args = parser.parse_args(argv)
    try:
        args.level_list = [int(x) for x in args.levels.split(",") if x.strip()]
    except ValueError:
        parser.error("--levels must be comma-separated integers")
    if args.quick:
        args.rounds = 2
    if args.rounds < 1 or args.chunks < 1 or args.interval_ms < 0:
        parser.error("--rounds and --chunks must be at least 1 and --interval-ms not negative")
    if not args.level_list or any(level < 1 for level in args.level_list):
        parser.error("--levels must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinning = pinning_from(args.server_cpus, args.load_cpus)
    proxy_cores = pinning.server_cores if pinning.used else None
    driver_cores = pinning.driver_cores if pinning.used else None
    model = f"chunks-{args.chunks}-{args.interval_ms:g}"
    table = QUICK_STREAMS_PER_WORKER if args.quick else STREAMS_PER_WORKER
    per_worker = {level: table.get(level, max(1, 64 // level)) for level in args.level_list}
    litellm: dict[str, Any] = {"measured": False, "reason": "--no-litellm"}
    executable: Path | None = None
    if not args.no_litellm:
        executable = ensure_litellm_venv()
        litellm = {"measured": True, "version": litellm_version()}
    needed = sum(level * (1 + args.rounds * per_worker[level]) for level in args.level_list)

    with tempfile.TemporaryDirectory(prefix="bench-chat-relay-") as tmp_name:
        tmp = Path(tmp_name)
        mock_port, server_port, litellm_port = free_port(), free_port(), free_port()
        mock_url = f"http://127.0.0.1:{mock_port}"
        server_url = f"http://127.0.0.1:{server_port}"
        processes: list[subprocess.Popen[bytes]] = []
        try:
            # The mock shares the driver's core: every path pays for it alike, and the proxy
            # under test has the other core to itself.
            mock = start_mock(mock_port, tmp / "mock.log", driver_cores)
            processes.append(mock)
            server = start_backend(tmp, server_port, tmp / "server.log", proxy_cores)
            processes.append(server)
            lite_proc: subprocess.Popen[bytes] | None = None
            lite_started = time.monotonic()
            if executable is not None:
                lite_proc = start_litellm(
                    executable, tmp, litellm_port, mock_url, model, proxy_cores
                )
                processes.append(lite_proc)
            if driver_cores:
                os.sched_setaffinity(0, set(driver_cores))
            wait_until_ok(mock_url + "/health", mock, tmp / "mock.log", "mock upstream")
            wait_until_ok(server_url + "/health", server, tmp / "server.log", "server")
            token = sign_in(server_url)
            config_id = create_model_config(server_url, token, mock_url, model)
            print(f"creating {needed} chat sessions (one per stream through our API)")
            sessions = create_sessions(server_url, token, config_id, needed)
            if lite_proc is not None:
                wait_until_ok(
                    f"http://127.0.0.1:{litellm_port}/health/liveliness",
                    lite_proc,
                    tmp / "litellm.log",
                    "LiteLLM proxy",
                    timeout=LITELLM_STARTUP_TIMEOUT_S,
                )
                litellm["startup_s"] = time.monotonic() - lite_started
            openai_body = json.dumps(
                {
                    "model": model,
                    "messages": [{"role": "user", "content": PROMPT}],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
            ).encode()
            targets = {
                "direct": Target(
                    mock_port,
                    "/v1/chat/completions",
                    {"Authorization": f"Bearer {UPSTREAM_KEY}"},
                    openai_body,
                ),
                "modeltrain": Target(
                    server_port,
                    "/api/chat/sessions/{session_id}/stream",
                    {"Authorization": f"Bearer {token}"},
                    None,
                ),
            }
            pids = {"modeltrain": server.pid, "mock": mock.pid}
            if lite_proc is not None:
                targets["litellm"] = Target(
                    litellm_port,
                    "/v1/chat/completions",
                    {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
                    openai_body,
                )
                pids["litellm"] = lite_proc.pid
            print(f"measuring {', '.join(targets)} at {args.levels} concurrent streams")
            tallies = asyncio.run(
                run_all(
                    targets,
                    sessions,
                    args.level_list,
                    args.rounds,
                    per_worker,
                    args.chunks,
                    (args.chunks * args.interval_ms + STREAM_SETUP_MS) / 1000,
                    CpuMeter(pids),
                )
            )
        finally:
            for process in reversed(processes):
                stop_process(process)
    report = build_report(tallies, args, pinning, litellm, per_worker)
    print_report(report)
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
