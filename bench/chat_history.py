"""Does a long chat history make appending to a session or opening it slower?

Sessions of 10, 50, 1,000 and 10,000 messages are filled straight into the real server's
SQLite database with SQLAlchemy (the app's own models, counters kept consistent) while the
server is stopped; the server is then started on that database and the driver measures, with
the sizes interleaved request by request so that drift cancels:

- append: `POST /api/chat/messages` to a 1,000-message session vs a 10-message one;
- a streamed turn: `POST /api/chat/sessions/{id}/stream` (writes the user turn, reads the newest
  messages as context, relays a short mock answer, writes the answer), 1,000 vs 10 messages
  (50 shown too: the context is capped at 50 turns, so 50 sends as much as 1,000);
- open: `GET /api/chat/sessions/{id}` (first page, the API's default limit of 50), 10,000 vs 10
  messages (50 shown too: the same page size as 10,000).

Targets: append and streamed turn on 1,000 messages <= 1.5x the 10-message time, open on
10,000 messages <= 2x the 10-message time (p50; p99 ratios are shown beside).

    .venv/bin/python bench/chat_history.py            # 300 appends / opens, 100 turns per size
    .venv/bin/python bench/chat_history.py --quick    # 40 / 40 / 15, a smoke check

A benchmark, not a test: it exits 0 whether or not the targets are met, and prints FAIL.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    BACKEND,
    REPO,
    Pinning,
    add_placement_args,
    create_model_config,
    create_sessions,
    free_port,
    pinning_from,
    platform_info,
    sign_in,
    start_backend,
    start_mock,
    stop_process,
    summarise,
    verdict,
    wait_until_ok,
    write_json,
)

DEFAULT_OUT = REPO / "bench" / "results" / "chat_history.json"
MODEL = "chunks-10-0"  # a short answer at once: the turn's time is the server's own work
APPEND_SESSIONS = 50  # appends rotate over these, so a "10-message" session stays small
STREAM_SESSIONS = 20
SMALL, MEDIUM, LARGE, HUGE = 10, 50, 1_000, 10_000
APPEND_SIZES = (SMALL, LARGE)
STREAM_SIZES = (SMALL, MEDIUM, LARGE)
OPEN_SIZES = (SMALL, MEDIUM, HUGE)
TARGET_APPEND = 1.5
TARGET_STREAM = 1.5
TARGET_OPEN = 2.0
WARMUP = 5
FILLER = (
    "The quick brown fox jumps over the lazy dog while the benchmark keeps on talking about"
    " nothing in particular, long enough to look like a real chat turn of a few sentences."
)


# --------------------------------------------------------------------------- filling


@dataclass(frozen=True)
class Plan:
    """Session ids per operation and size."""

    append: dict[int, list[int]]
    stream: dict[int, list[int]]
    open: dict[int, int]

    def sizes(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for size, ids in [*self.append.items(), *self.stream.items()]:
            out.update(dict.fromkeys(ids, size))
        out.update({sid: size for size, sid in self.open.items()})
        return out


def message_text(index: int) -> str:
    return f"Message {index}. {FILLER}"


def fill(db_path: Path, sizes: dict[int, int], config_id: int) -> tuple[int, float]:
    """Insert `sizes[sid]` alternating user/assistant turns into each session and set its
    counters, preview and time as the API would have left them; (rows, seconds)."""
    # The app's models bind app.database to DATABASE_URL at import: point it at this file.
    os.environ["MODELTRAIN_ENV_FILE"] = ""
    os.environ["DATABASE_URL"] = f"sqlite:///{db_path}"
    os.environ["DATA_DIR"] = str(db_path.parent / "data")
    sys.path.insert(0, str(BACKEND))
    from sqlalchemy import create_engine, insert, update

    from app.models.chat import PREVIEW_MAX, ChatMessageRow, ChatSession

    started = time.perf_counter()
    engine = create_engine(f"sqlite:///{db_path}")
    rows = 0
    base = datetime.now(UTC) - timedelta(days=30)
    with engine.begin() as connection:
        for session_id, size in sizes.items():
            batch: list[dict[str, Any]] = []
            for index in range(size):
                user = index % 2 == 0
                batch.append(
                    {
                        "session_id": session_id,
                        "role": "user" if user else "assistant",
                        "content": message_text(index),
                        "reasoning": None,
                        "status": "complete",
                        "error": None,
                        "image_ids": [],
                        "model_config_id": None if user else config_id,
                        "model": None if user else MODEL,
                        "prompt_tokens": None if user else 40,
                        "completion_tokens": None if user else 40,
                        "latency_ms": None if user else 900,
                        "ttft_ms": None if user else 120,
                        "finish_reason": None if user else "stop",
                        "created_at": base + timedelta(seconds=index),
                    }
                )
            connection.execute(insert(ChatMessageRow), batch)
            rows += len(batch)
            last = message_text(size - 1)
            connection.execute(
                update(ChatSession)
                .where(ChatSession.id == session_id)
                .values(
                    message_count=size,
                    last_message_preview=last[:PREVIEW_MAX],
                    updated_at=base + timedelta(seconds=size),
                )
            )
    engine.dispose()
    return rows, time.perf_counter() - started


# --------------------------------------------------------------------------- measurements


def timed(call: Any) -> float:
    start = time.perf_counter()
    response = call()
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code not in (200, 201):
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text}")
    return elapsed


def stream_turn(client: httpx.Client, session_id: int) -> tuple[float, float]:
    """(ms to the first content event, ms to [DONE]) of one streamed turn."""
    start = time.perf_counter()
    first: float | None = None
    done: float | None = None
    with client.stream(
        "POST", f"/api/chat/sessions/{session_id}/stream", json={"content": "One more, please."}
    ) as response:
        if response.status_code != 200:
            response.read()
            raise RuntimeError(f"stream {session_id}: {response.status_code} {response.text}")
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            payload = line[6:]
            now = time.perf_counter()
            if payload == "[DONE]":
                done = now
            elif payload == "[ERROR]":
                raise RuntimeError(f"stream {session_id} ended with [ERROR]")
            elif first is None and json.loads(payload).get("type") == "content":
                first = now
    if first is None or done is None:
        raise RuntimeError(f"stream {session_id}: no content or no [DONE]")
    return (first - start) * 1000, (done - start) * 1000


def rotated(sizes: tuple[int, ...], index: int) -> list[int]:
    shift = index % len(sizes)
    return list(sizes[shift:] + sizes[:shift])


def measure(
    base_url: str, token: str, plan: Plan, appends: int, opens: int, turns: int
) -> dict[str, Any]:
    samples: dict[str, dict[int, list[float]]] = {
        "append": {size: [] for size in APPEND_SIZES},
        "open": {size: [] for size in OPEN_SIZES},
        "stream_ttft": {size: [] for size in STREAM_SIZES},
        "stream_total": {size: [] for size in STREAM_SIZES},
    }
    appended: dict[int, int] = {}
    streamed: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, timeout=60.0, headers=headers) as client:

        def append(size: int, index: int) -> float:
            ids = plan.append[size]
            session_id = ids[index % len(ids)]
            appended[session_id] = appended.get(session_id, 0) + 1
            body = {"session_id": session_id, "role": "user", "content": message_text(index)}
            return timed(lambda: client.post("/api/chat/messages", json=body))

        def open_session(size: int) -> float:
            return timed(lambda: client.get(f"/api/chat/sessions/{plan.open[size]}"))

        def turn(size: int, index: int) -> tuple[float, float]:
            ids = plan.stream[size]
            session_id = ids[index % len(ids)]
            streamed[session_id] = streamed.get(session_id, 0) + 1
            return stream_turn(client, session_id)

        # Warm-up, unrecorded, on sessions of their own kind (counted for the final check).
        for index in range(WARMUP):
            for size in APPEND_SIZES:
                append(size, index)
            for size in OPEN_SIZES:
                open_session(size)
            for size in STREAM_SIZES:
                turn(size, index)
        gc.collect()
        for index in range(max(appends, opens, turns)):
            if index < appends:
                for size in rotated(APPEND_SIZES, index):
                    samples["append"][size].append(append(size, index))
            if index < opens:
                for size in rotated(OPEN_SIZES, index):
                    samples["open"][size].append(open_session(size))
            if index < turns:
                for size in rotated(STREAM_SIZES, index):
                    ttft, total = turn(size, index)
                    samples["stream_ttft"][size].append(ttft)
                    samples["stream_total"][size].append(total)

        # The counters must match what is stored: fill + appends (+ 2 per streamed turn).
        expected = plan.sizes()
        for session_id, count in appended.items():
            expected[session_id] += count
        for session_id, count in streamed.items():
            expected[session_id] += 2 * count
        mismatched = 0
        for session_id, count in expected.items():
            detail = client.get(f"/api/chat/sessions/{session_id}", params={"limit": 1}).json()
            if detail["session"]["message_count"] != count:
                mismatched += 1
    return {"samples": samples, "counter_mismatches": mismatched, "sessions_checked": len(expected)}


# --------------------------------------------------------------------------- report


def ratio_check(
    name: str, stats: dict[int, dict[str, Any]], small: int, big: int, target: float
) -> dict[str, Any]:
    p50 = stats[big]["p50_ms"] / stats[small]["p50_ms"]
    p99 = stats[big]["p99_ms"] / stats[small]["p99_ms"]
    return {
        "check": f"{name}: {big:,} vs {small} messages, p50 ratio <= {target:g}",
        "ratio_p50": p50,
        "ratio_p99": p99,
        "pass": p50 <= target,
    }


def build_report(
    measured: dict[str, Any],
    fill_info: dict[str, Any],
    args: argparse.Namespace,
    pinning: Pinning,
) -> dict[str, Any]:
    stats = {
        metric: {size: summarise(values) for size, values in by_size.items()}
        for metric, by_size in measured["samples"].items()
    }
    checks = [
        ratio_check("append", stats["append"], SMALL, LARGE, TARGET_APPEND),
        ratio_check("streamed turn (total)", stats["stream_total"], SMALL, LARGE, TARGET_STREAM),
        ratio_check("open", stats["open"], SMALL, HUGE, TARGET_OPEN),
    ]
    info = ratio_check("streamed turn (TTFT)", stats["stream_ttft"], SMALL, LARGE, TARGET_STREAM)
    info["pass"] = None  # shown, not judged: the target is on the whole turn
    checks.append(info)
    mismatches = measured["counter_mismatches"]
    checks.append(
        {
            "check": f"message_count matches the stored turns ({measured['sessions_checked']}"
            " sessions)",
            "mismatches": mismatches,
            "pass": mismatches == 0,
        }
    )
    decided = [c["pass"] for c in checks if c["pass"] is not None]
    return {
        "benchmark": "chat_history",
        **platform_info(),
        "pinning": {
            "used": pinning.used,
            "server_cores": pinning.server_cores,
            "mock_and_driver_cores": pinning.driver_cores,
            "how": pinning.reason,
        },
        "settings": {
            "appends_per_size": args.appends,
            "opens_per_size": args.opens,
            "turns_per_size": args.turns,
            "append_sessions_per_size": APPEND_SESSIONS,
            "stream_sessions_per_size": STREAM_SESSIONS,
            "model": MODEL,
            "database": "SQLite (WAL), filled directly before the server starts",
            "percentile_method": "linear interpolation between closest ranks (numpy 'linear')",
        },
        "fill": fill_info,
        "results": {
            metric: {str(size): s for size, s in by_size.items()}
            for metric, by_size in stats.items()
        },
        "checks": checks,
        "pass": all(decided),
        "load_average_after": list(os.getloadavg()),
    }


def print_report(report: dict[str, Any]) -> None:
    pin = report["pinning"]
    if pin["used"]:
        pinned = (
            f"server on CPU {pin['server_cores']}, mock and driver on CPU"
            f" {pin['mock_and_driver_cores']}"
        )
    else:
        pinned = f"no ({pin['how']})"
    fill_info = report["fill"]
    print(
        f"\nchat_history: {fill_info['rows']:,} messages filled in {fill_info['seconds']:.1f} s"
        f" ({fill_info['sessions']} sessions), {report['cpu_count']} CPUs, pinning: {pinned}\n"
    )
    labels = {
        "append": "append (POST /messages)",
        "stream_ttft": "streamed turn, TTFT",
        "stream_total": "streamed turn, total",
        "open": "open (GET /sessions/{id})",
    }
    print(f"{'operation':<28} {'messages':>8} {'n':>5} {'p50_ms':>7} {'p90_ms':>7} {'p99_ms':>7}")
    for metric, label in labels.items():
        for size, s in report["results"][metric].items():
            print(
                f"{label:<28} {int(size):>8,} {s['samples']:>5} {s['p50_ms']:>7.2f}"
                f" {s['p90_ms']:>7.2f} {s['p99_ms']:>7.2f}"
            )
    print("\nchecks:")
    for check in report["checks"]:
        if "ratio_p50" in check:
            shown = f"p50 x{check['ratio_p50']:.2f}  (p99 x{check['ratio_p99']:.2f})"
        else:
            shown = f"{check['mismatches']} mismatched"
        print(f"  {verdict(check['pass']):<4}  {check['check']:<62} {shown}")
    print(f"\n{'PASS' if report['pass'] else 'FAIL'}: chat history")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--appends", type=int, default=300, help="appends per size (300)")
    parser.add_argument("--opens", type=int, default=300, help="opens per size (300)")
    parser.add_argument("--turns", type=int, default=100, help="streamed turns per size (100)")
    add_placement_args(parser, DEFAULT_OUT)
    parser.add_argument("--quick", action="store_true", help="40 / 40 / 15 samples (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args.appends, args.opens, args.turns = 40, 40, 15
    if min(args.appends, args.opens, args.turns) < 2:
        parser.error("--appends, --opens and --turns must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinning = pinning_from(args.server_cpus, args.load_cpus)
    server_cores = pinning.server_cores if pinning.used else None
    driver_cores = pinning.driver_cores if pinning.used else None
    with tempfile.TemporaryDirectory(prefix="bench-chat-history-") as tmp_name:
        tmp = Path(tmp_name)
        mock_port, server_port = free_port(), free_port()
        mock_url = f"http://127.0.0.1:{mock_port}"
        server_url = f"http://127.0.0.1:{server_port}"
        processes: list[subprocess.Popen[bytes]] = []
        try:
            mock = start_mock(mock_port, tmp / "mock.log", driver_cores)
            processes.append(mock)
            if driver_cores:
                os.sched_setaffinity(0, set(driver_cores))
            wait_until_ok(mock_url + "/health", mock, tmp / "mock.log", "mock upstream")

            # First start: migrations, the user, the config and empty sessions through the API.
            server = start_backend(tmp, server_port, tmp / "server-setup.log", server_cores)
            processes.append(server)
            wait_until_ok(server_url + "/health", server, tmp / "server-setup.log", "server")
            token = sign_in(server_url)
            config_id = create_model_config(server_url, token, mock_url, MODEL)
            plan = Plan(
                append={
                    size: create_sessions(server_url, token, config_id, APPEND_SESSIONS)
                    for size in APPEND_SIZES
                },
                stream={
                    size: create_sessions(server_url, token, config_id, STREAM_SESSIONS)
                    for size in STREAM_SIZES
                },
                open={
                    size: create_sessions(server_url, token, config_id, 1)[0] for size in OPEN_SIZES
                },
            )
            stop_process(server)
            processes.remove(server)

            sizes = plan.sizes()
            rows, seconds = fill(tmp / "bench.db", sizes, config_id)
            fill_info = {"rows": rows, "seconds": seconds, "sessions": len(sizes)}
            print(f"filled {rows:,} messages into {len(sizes)} sessions in {seconds:.1f} s")

            # Second start on the filled database: what is measured.
            server = start_backend(tmp, server_port, tmp / "server.log", server_cores)
            processes.append(server)
            wait_until_ok(server_url + "/health", server, tmp / "server.log", "server")
            token = sign_in(server_url, register=False)
            measured = measure(server_url, token, plan, args.appends, args.opens, args.turns)
        finally:
            for process in reversed(processes):
                stop_process(process)
    report = build_report(measured, fill_info, args, pinning)
    print_report(report)
    write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
