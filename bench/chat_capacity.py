"""Can one server worker relay 500 chat streams at once without stalling them?

The real server (`uvicorn main:app`, one worker) relays N concurrent chat streams (default 500,
started over a 1 s ramp) from the mock upstream, which sends a chunk every 20 ms, 200 chunks per
answer (`chunks-200-20`). The driver reads every stream with a lean asyncio HTTP client and
records when each content event arrives. Target: p99 of the gap between two consecutive chunks
of a stream <= 50 ms with at least 95% of the streams in flight at once, no failed stream,
every chunk delivered in order (and every answer saved).
A control phase first reads the same N streams straight from the mock with the same driver: if
that already misses the target, the load generator (mock + driver), not the server, is the
limit on this machine, and the server's figures are marked inconclusive.

    .venv/bin/python bench/chat_capacity.py                  # 500 streams x 200 chunks x 20 ms
    .venv/bin/python bench/chat_capacity.py --quick          # 50 streams x 50 chunks, a smoke check
    .venv/bin/python bench/chat_capacity.py --streams 100,200,500   # one phase pair per count

A benchmark, not a test: it exits 0 whether or not the target is met, and prints FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    REPO,
    CpuMeter,
    Pinning,
    StreamRecord,
    add_placement_args,
    create_model_config,
    create_sessions,
    free_port,
    percentile,
    pinning_from,
    platform_info,
    raise_fd_limit,
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

DEFAULT_OUT = REPO / "bench" / "results" / "chat_capacity.json"
TARGET_GAP_P99_MS = 50.0
# The streams must really run at once: a server that admits them too slowly would otherwise
# meet the gap target with fewer streams in flight (each runs chunks x interval, 4 s by default,
# and all start within the 1 s ramp).
CONCURRENT_SHARE = 0.95
OTHER_CPU_WARN_PCT = 10.0
PROMPT = "Stream me a long answer, please."


# --------------------------------------------------------------------------- measurements


@dataclass
class StreamResult:
    """One stream as the driver saw it."""

    start: float
    first: float | None
    last: float | None
    end: float
    chunks: int
    in_order: bool
    gaps_ms: list[float]
    error: str | None


@dataclass
class PhaseResult:
    phase: str  # "control" (straight to the mock) or "server"
    streams: int
    results: list[StreamResult] = field(default_factory=list)
    records: list[StreamRecord] = field(default_factory=list)
    cpu: dict[str, float] | None = None
    wall_s: float = 0.0
    saved: dict[str, int] | None = None  # server phase: what the database holds afterwards


def analyse(phase: str, record: StreamRecord, chunks: int) -> StreamResult:
    """Content events with their arrival times; the text must be tok0 .. tok{chunks-1}."""
    texts: list[str] = []
    times: list[float] = []
    error: str | None = None
    done = False
    if record.error or record.status != 200:
        error = record.error or f"HTTP {record.status}: {record.body[:200]!r}"
    else:
        for at, payload in record.payloads():
            if payload == b"[DONE]":
                done = True
                continue
            if payload == b"[ERROR]":
                error = error or "stream ended with [ERROR]"
                continue
            event = json.loads(payload)
            if phase == "server":
                if event.get("type") == "error":
                    error = f"error event: {event.get('code')}: {event.get('message')}"
                text = event.get("text") if event.get("type") == "content" else None
            else:
                choices = event.get("choices") or []
                text = (choices[0].get("delta") or {}).get("content") if choices else None
            if text:
                texts.append(text)
                times.append(at)
        if error is None and not done:
            error = "no [DONE]"
    in_order = texts == [f"tok{i} " for i in range(len(texts))]
    if error is None and (len(texts) != chunks or not in_order):
        error = f"{len(texts)} content chunks (of {chunks}), in order: {in_order}"
    return StreamResult(
        start=record.start,
        first=times[0] if times else None,
        last=times[-1] if times else None,
        end=record.end or time.perf_counter(),
        chunks=len(texts),
        in_order=in_order,
        gaps_ms=[(b - a) * 1000 for a, b in itertools.pairwise(times)],
        error=error,
    )


async def run_streams(
    count: int,
    ramp_s: float,
    open_stream: Callable[[int], Coroutine[Any, Any, StreamRecord]],
) -> list[StreamRecord]:
    """Start `count` streams evenly over `ramp_s` seconds and read them all to the end."""

    async def one(index: int) -> StreamRecord:
        await asyncio.sleep(ramp_s * index / count)
        return await open_stream(index)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def run_loop(coroutine: Coroutine[Any, Any, list[StreamRecord]]) -> list[StreamRecord]:
    """uvloop when installed (uvicorn[standard] brings it): the cheapest driver there is."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


@dataclass(frozen=True)
class Target:
    """Where the streams of a phase go: one path per stream."""

    port: int
    paths: list[str]
    body: bytes
    headers: dict[str, str]


def run_phase(
    kind: str, target: Target, ramp_s: float, limit_s: float, meter: CpuMeter
) -> PhaseResult:
    def open_stream(index: int) -> Coroutine[Any, Any, StreamRecord]:
        return read_sse(
            "127.0.0.1",
            target.port,
            target.paths[index],
            target.body,
            target.headers,
            limit_s=limit_s,
        )

    count = len(target.paths)
    gc.collect()
    gc.disable()  # a full collection over ~100k recorded frames would stall the driver
    try:
        before = meter.snapshot()
        started = time.perf_counter()
        records = run_loop(run_streams(count, ramp_s, open_stream))
        wall = time.perf_counter() - started
        after = meter.snapshot()
    finally:
        gc.enable()
    return PhaseResult(
        kind, count, wall_s=wall, cpu=CpuMeter.percent(before, after), records=records
    )


def peak_concurrency(results: list[StreamResult]) -> int:
    """Most streams between their first and last chunk at the same moment."""
    events: list[tuple[float, int]] = []
    for r in results:
        if r.first is not None and r.last is not None:
            events += [(r.first, 1), (r.last, -1)]
    peak = current = 0
    for _, step in sorted(events):
        current += step
        peak = max(peak, current)
    return peak


def check_saved(base_url: str, token: str, sessions: list[int], chunks: int) -> dict[str, int]:
    """After the server phase: each session holds the user turn and a complete answer with the
    whole text (the relay's one write per answer)."""
    expected = "".join(f"tok{i} " for i in range(chunks))
    counts = {"complete": 0, "wrong": 0}
    with httpx.Client(
        base_url=base_url, timeout=60.0, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for session_id in sessions:
            detail = client.get(f"/api/chat/sessions/{session_id}", params={"limit": 2}).json()
            items = detail["messages"]["items"]
            ok = (
                detail["session"]["message_count"] == 2
                and len(items) == 2
                and items[1]["role"] == "assistant"
                and items[1]["status"] == "complete"
                and items[1]["content"] == expected
            )
            counts["complete" if ok else "wrong"] += 1
    return counts


# --------------------------------------------------------------------------- report


def phase_report(phase: PhaseResult, chunks: int) -> dict[str, Any]:
    results = phase.results
    gaps = [g for r in results for g in r.gaps_ms]
    good = [r for r in results if r.error is None]
    errors: dict[str, int] = {}
    for r in results:
        if r.error is not None:
            key = r.error[:120]
            errors[key] = errors.get(key, 0) + 1
    gap_stats: dict[str, Any] = summarise(gaps)
    gap_stats["p99_9_ms"] = percentile(gaps, 99.9)
    delivered = sum(r.chunks for r in results)
    peak = peak_concurrency(results)
    passed = (
        bool(gaps)
        and gap_stats["p99_ms"] <= TARGET_GAP_P99_MS
        and peak >= CONCURRENT_SHARE * phase.streams
        and not errors
        and delivered == phase.streams * chunks
        and (phase.saved is None or phase.saved["complete"] == phase.streams)
    )
    return {
        "streams": phase.streams,
        "ok": len(good),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "chunks_delivered": delivered,
        "chunks_expected": phase.streams * chunks,
        "gap": gap_stats,
        "ttft": summarise([(r.first - r.start) * 1000 for r in results if r.first is not None]),
        "total": summarise([(r.end - r.start) * 1000 for r in good]),
        "peak_concurrent_streams": peak,
        "wall_s": phase.wall_s,
        "cpu_pct": phase.cpu,
        "saved_answers": phase.saved,
        "pass": passed,
    }


def build_report(
    phases: list[PhaseResult], args: argparse.Namespace, pinning: Pinning, fd_limit: int
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for count in args.stream_counts:
        control = next((p for p in phases if p.phase == "control" and p.streams == count), None)
        server = next((p for p in phases if p.phase == "server" and p.streams == count), None)
        entry: dict[str, Any] = {"streams": count}
        if control is not None:
            entry["control"] = phase_report(control, args.chunks)
        if server is not None:
            entry["server"] = phase_report(server, args.chunks)
        control_ok = entry["control"]["pass"] if control is not None else None
        entry["load_generator_ok"] = control_ok
        entry["conclusive"] = control_ok is not False
        runs.append(entry)
    target = next((r for r in runs if r["streams"] == max(args.stream_counts)), runs[-1])
    return {
        "benchmark": "chat_capacity",
        **platform_info(),
        "pinning": {
            "used": pinning.used,
            "server_cores": pinning.server_cores,
            "mock_and_driver_cores": pinning.driver_cores,
            "how": pinning.reason,
        },
        "settings": {
            "stream_counts": args.stream_counts,
            "chunks": args.chunks,
            "interval_ms": args.interval_ms,
            "model": f"chunks-{args.chunks}-{args.interval_ms:g}",
            "ramp_s": args.ramp_s,
            "uvicorn_workers": 1,
            "open_files_limit": fd_limit,
            "target_gap_p99_ms": TARGET_GAP_P99_MS,
            "target_peak_concurrent_share": CONCURRENT_SHARE,
            "percentile_method": "linear interpolation between closest ranks (numpy 'linear')",
        },
        "runs": runs,
        "pass": bool(target.get("server", {}).get("pass")),
        "conclusive": target["conclusive"],
        "load_average_after": list(os.getloadavg()),
    }


def print_report(report: dict[str, Any]) -> None:
    settings = report["settings"]
    pin = report["pinning"]
    if pin["used"]:
        pinned = (
            f"server on CPU {pin['server_cores']}, mock and driver on CPU"
            f" {pin['mock_and_driver_cores']}"
        )
    else:
        pinned = f"no ({pin['how']})"
    print(
        f"\nchat_capacity: model {settings['model']}, streams started over"
        f" {settings['ramp_s']:g} s, one uvicorn worker, {report['cpu_count']} CPUs,"
        f" pinning: {pinned}\n"
    )
    print(
        f"{'streams':>7} {'phase':<8} {'ok':>4} {'err':>4} {'chunks':>14} {'peak':>5}"
        f" {'gap p50':>7} {'p90':>6} {'p99':>6} {'p99.9':>6} {'max':>6}"
        f" {'TTFT p50':>8} {'p99':>6} {'wall s':>6}  CPU % (server/mock/driver/other)"
    )
    for run in report["runs"]:
        for phase in ("control", "server"):
            if phase not in run:
                continue
            p = run[phase]
            g = p["gap"]
            cpu = p["cpu_pct"] or {}
            cpu_text = "/".join(
                f"{cpu.get(k, 0.0):.0f}" for k in ("server", "mock", "driver", "other")
            )
            print(
                f"{run['streams']:>7} {phase:<8} {p['ok']:>4} {p['errors']:>4}"
                f" {p['chunks_delivered']:>6}/{p['chunks_expected']:<7}"
                f" {p['peak_concurrent_streams']:>5}"
                f" {g['p50_ms']:>7.1f} {g['p90_ms']:>6.1f} {g['p99_ms']:>6.1f}"
                f" {g['p99_9_ms']:>6.1f} {g['max_ms']:>6.1f}"
                f" {p['ttft']['p50_ms']:>8.1f} {p['ttft']['p99_ms']:>6.0f} {p['wall_s']:>6.1f}"
                f"  {cpu_text}   {verdict(p['pass'])}"
            )
            if p["saved_answers"] is not None:
                saved = p["saved_answers"]
                print(
                    f"{'':>16} saved answers: {saved['complete']} complete and whole,"
                    f" {saved['wrong']} missing or wrong"
                )
            for kind, count in p["error_kinds"].items():
                print(f"{'':>16} {count} x {kind}")
            if cpu and cpu.get("other", 0.0) > OTHER_CPU_WARN_PCT:
                print(
                    f"{'':>16} WARNING: other programs used {cpu['other']:.0f}% of a core:"
                    " figures disturbed"
                )
        if run["load_generator_ok"] is False:
            print(
                f"{'':>16} INCONCLUSIVE: the control (driver straight to the mock) already misses"
                " the target: the load generator, not the server, limits this machine"
            )
    print(
        f"\ntarget: gap p99 <= {settings['target_gap_p99_ms']:g} ms, at least"
        f" {CONCURRENT_SHARE:.0%} of the streams in flight at once, no errors, every chunk"
        " delivered in order, every answer saved"
        f"  ->  {'PASS' if report['pass'] else 'FAIL'}"
        + ("" if report["conclusive"] else " (inconclusive: see the control)")
    )


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--streams", default="500", help="concurrent streams, comma-separated for a sweep (500)"
    )
    parser.add_argument("--chunks", type=int, default=200, help="chunks per answer (200)")
    parser.add_argument(
        "--interval-ms", type=float, default=20.0, help="pause between chunks in ms (20)"
    )
    parser.add_argument(
        "--ramp-s", type=float, default=1.0, help="seconds over which streams start (1)"
    )
    parser.add_argument(
        "--no-control", action="store_true", help="skip the control phase straight to the mock"
    )
    add_placement_args(parser, DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="50 streams x 50 chunks (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.chunks = "50", 50
    try:
        args.stream_counts = sorted({int(x) for x in args.streams.split(",") if x.strip()})
    except ValueError:
        parser.error("--streams must be comma-separated integers")
    if not args.stream_counts or min(args.stream_counts) < 1 or args.chunks < 2:
        parser.error("--streams must be positive and --chunks at least 2")
    if args.interval_ms < 0 or args.ramp_s < 0:
        parser.error("--interval-ms and --ramp-s must not be negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinning = pinning_from(args.server_cpus, args.load_cpus)
    server_cores = pinning.server_cores if pinning.used else None
    driver_cores = pinning.driver_cores if pinning.used else None
    # Each stream holds up to four sockets on this machine (driver, server in and out, mock).
    fd_limit = raise_fd_limit(4 * max(args.stream_counts) + 1024)
    model = f"chunks-{args.chunks}-{args.interval_ms:g}"
    expected_s = args.chunks * args.interval_ms / 1000 + args.ramp_s
    limit_s = max(120.0, 10 * expected_s)
    body_direct = json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": PROMPT}],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
    ).encode()
    body_chat = json.dumps({"content": PROMPT}).encode()
    phases: list[PhaseResult] = []
    with tempfile.TemporaryDirectory(prefix="bench-chat-capacity-") as tmp_name:
        tmp = Path(tmp_name)
        mock_port, server_port = free_port(), free_port()
        mock_url = f"http://127.0.0.1:{mock_port}"
        server_url = f"http://127.0.0.1:{server_port}"
        processes: list[subprocess.Popen[bytes]] = []
        try:
            mock = start_mock(mock_port, tmp / "mock.log", driver_cores)
            processes.append(mock)
            server = start_backend(tmp, server_port, tmp / "server.log", server_cores)
            processes.append(server)
            if driver_cores:
                os.sched_setaffinity(0, set(driver_cores))
            wait_until_ok(mock_url + "/health", mock, tmp / "mock.log", "mock upstream")
            wait_until_ok(server_url + "/health", server, tmp / "server.log", "server")
            token = sign_in(server_url)
            config_id = create_model_config(server_url, token, mock_url, model)
            meter = CpuMeter({"server": server.pid, "mock": mock.pid})
            headers = {"Authorization": f"Bearer {token}"}
            for count in args.stream_counts:
                print(f"creating {count} chat sessions")
                sessions = create_sessions(server_url, token, config_id, count)
                for kind in ["server"] if args.no_control else ["control", "server"]:
                    print(f"{kind}: {count} streams of {model}")
                    if kind == "control":
                        target = Target(
                            mock_port, ["/v1/chat/completions"] * count, body_direct, {}
                        )
                    else:
                        paths = [f"/api/chat/sessions/{sid}/stream" for sid in sessions]
                        target = Target(server_port, paths, body_chat, headers)
                    phase = run_phase(kind, target, args.ramp_s, limit_s, meter)
                    phase.results = [analyse(kind, r, args.chunks) for r in phase.records]
                    phase.records = []
                    if kind == "server":  # the answer is written before its [DONE]
                        phase.saved = check_saved(server_url, token, sessions, args.chunks)
                    phases.append(phase)
        finally:
            for process in reversed(processes):
                with contextlib.suppress(Exception):
                    stop_process(process)
    report = build_report(phases, args, pinning, fd_limit)
    print_report(report)
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
