"""Does a stream of logins slow everything else down?

While a fixed open-loop schedule of logins (default 20/s, each one an Argon2id verification)
runs against a real server, a prober measures `GET /health`. Idle and loaded phases are
interleaved (R rounds of [idle, loaded]) so that slow drift of the machine cancels out.
Target: loaded p50 and p99 of /health at most 1.5x the idle figures of the same run, i.e.
password hashing does not block the event loop.

    .venv/bin/python bench/login_load.py            # 3 rounds x (10 s idle + 10 s loaded)
    .venv/bin/python bench/login_load.py --quick    # 1 round x (3 s + 3 s), a smoke check

A benchmark, not a test: it exits 0 whether or not the target is met, and prints FAIL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    Pinning,
    choose_pinning,
    free_port,
    stop_process,
    summarise,
    tail,
)

REPO = Path(__file__).resolve().parent.parent
BACKEND = REPO / "backend"
UVICORN = REPO / ".venv" / "bin" / "uvicorn"
DEFAULT_OUT = REPO / "bench" / "results" / "login_load.json"

TARGET_RATIO = 1.5
PROBE_INTERVAL_S = 0.020  # the prober's sleep between two /health requests
STARTUP_TIMEOUT_S = 60.0
LOGIN_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 30.0  # how long a loaded phase waits for its last logins to answer
OTHER_CPU_WARN_PCT = 10.0  # CPU (% of one core) used by other programs that makes a phase suspect

BENCH_EMAIL = "bench-load@example.com"
BENCH_NICKNAME = "bench-load"
BENCH_PASSWORD = "bench-load-Pass-1"


def to_ms(seconds: list[float]) -> list[float]:
    return [value * 1000.0 for value in seconds]


# --------------------------------------------------------------------------- measurements


@dataclass
class PhaseResult:
    """What one phase (idle or loaded) of one round recorded."""

    kind: str
    round_no: int
    duration_s: float
    health_latencies_s: list[float] = field(default_factory=list)
    health_errors: int = 0
    logins_sent: int = 0
    login_latencies_s: list[float] = field(default_factory=list)
    login_statuses: Counter[str] = field(default_factory=Counter)
    send_lags_s: list[float] = field(default_factory=list)  # actual minus scheduled send time
    cpu: CpuUse | None = None


@dataclass(frozen=True)
class CpuSnapshot:
    """Cumulative CPU seconds: the whole machine (busy and stolen), the server, this driver."""

    wall: float
    machine_busy: float
    machine_steal: float
    server: float
    driver: float


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds spent during one phase. `other` is everything that was neither the server
    nor this driver (other programs on the machine): when it is large, the phase was disturbed."""

    wall_s: float
    server_s: float
    driver_s: float
    other_s: float
    steal_s: float


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_snapshot(server_pid: int) -> CpuSnapshot | None:
    """Read /proc (Linux only); None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
        # Fields 14 and 15 of /proc/<pid>/stat (utime, stime; all threads), counted after
        # the parenthesised command name, which may itself contain spaces.
        proc = Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()
        server_ticks = int(proc[11]) + int(proc[12])
    except (OSError, ValueError, IndexError):
        return None
    own = os.times()
    return CpuSnapshot(
        wall=time.perf_counter(),
        machine_busy=(user + nice + system + irq + softirq) / _CLOCK_TICKS,
        machine_steal=steal / _CLOCK_TICKS,
        server=server_ticks / _CLOCK_TICKS,
        driver=own.user + own.system,
    )


def cpu_use(before: CpuSnapshot | None, after: CpuSnapshot | None) -> CpuUse | None:
    if before is None or after is None:
        return None
    server = after.server - before.server
    driver = after.driver - before.driver
    return CpuUse(
        wall_s=after.wall - before.wall,
        server_s=server,
        driver_s=driver,
        other_s=max(0.0, after.machine_busy - before.machine_busy - server - driver),
        steal_s=after.machine_steal - before.machine_steal,
    )


async def probe_health(client: httpx.AsyncClient, deadline: float, result: PhaseResult) -> None:
    """Closed loop: GET /health, record its latency, sleep a little, repeat until deadline."""
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        try:
            response = await client.get("/health")
            ok = response.status_code == 200
        except httpx.HTTPError:
            ok = False
        elapsed = time.perf_counter() - start
        if ok:
            result.health_latencies_s.append(elapsed)
        else:
            result.health_errors += 1
        await asyncio.sleep(PROBE_INTERVAL_S)


async def one_login(client: httpx.AsyncClient, result: PhaseResult) -> None:
    start = time.perf_counter()
    try:
        response = await client.post(
            "/api/auth/login", json={"username": BENCH_EMAIL, "password": BENCH_PASSWORD}
        )
        status = str(response.status_code)
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    result.login_latencies_s.append(time.perf_counter() - start)
    result.login_statuses[status] += 1


async def drive_logins(
    client: httpx.AsyncClient, start: float, deadline: float, rate: float, result: PhaseResult
) -> None:
    """Open loop: login i is sent at start + i / rate, each in its own task, whatever the
    earlier ones are doing; then wait for the stragglers so none spill into the next phase."""
    tasks: set[asyncio.Task[None]] = set()
    index = 0
    while True:
        scheduled = start + index / rate
        if scheduled >= deadline:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        result.send_lags_s.append(time.perf_counter() - scheduled)
        tasks.add(asyncio.create_task(one_login(client, result)))
        result.logins_sent += 1
        index += 1
    if tasks:
        done, pending = await asyncio.wait(tasks, timeout=DRAIN_TIMEOUT_S)
        for task in pending:
            task.cancel()
            result.login_statuses["unfinished"] += 1
        for task in done:
            task.result()  # one_login catches HTTP errors; anything else is a bug: raise it


async def run_phase(
    kind: str,
    round_no: int,
    duration: float,
    rate: float,
    prober: httpx.AsyncClient,
    login_client: httpx.AsyncClient,
    server_pid: int,
) -> PhaseResult:
    result = PhaseResult(kind=kind, round_no=round_no, duration_s=duration)
    cpu_before = cpu_snapshot(server_pid)
    start = time.perf_counter()
    deadline = start + duration
    jobs = [probe_health(prober, deadline, result)]
    if kind == "loaded":
        jobs.append(drive_logins(login_client, start, deadline, rate, result))
    await asyncio.gather(*jobs)
    result.cpu = cpu_use(cpu_before, cpu_snapshot(server_pid))
    return result


async def run_rounds(
    base_url: str, server_pid: int, rate: float, rounds: int, duration: float
) -> list[PhaseResult]:
    # One keep-alive connection for the prober, so each probe is one request, not a handshake.
    prober = httpx.AsyncClient(
        base_url=base_url,
        timeout=LOGIN_TIMEOUT_S,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )
    login_client = httpx.AsyncClient(
        base_url=base_url,
        timeout=LOGIN_TIMEOUT_S,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    async with prober, login_client:
        await warm_up(prober, login_client)
        results: list[PhaseResult] = []
        for round_no in range(1, rounds + 1):
            for kind in ("idle", "loaded"):
                results.append(
                    await run_phase(
                        kind, round_no, duration, rate, prober, login_client, server_pid
                    )
                )
        return results


async def warm_up(prober: httpx.AsyncClient, login_client: httpx.AsyncClient) -> None:
    """A few unrecorded requests: the first ones pay for imports, pools and caches."""
    for _ in range(20):
        (await prober.get("/health")).raise_for_status()
    for _ in range(3):
        response = await login_client.post(
            "/api/auth/login", json={"username": BENCH_EMAIL, "password": BENCH_PASSWORD}
        )
        response.raise_for_status()


# --------------------------------------------------------------------------- the server


def start_server(tmp: Path, port: int, pinning: Pinning, log_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MODELTRAIN_ENV_FILE": "",  # read no .env file
        "DATABASE_URL": f"sqlite:///{tmp / 'bench.db'}",
        "DATA_DIR": str(tmp / "data"),
        "LOGIN_RATE_LIMIT": "100000/1m",  # the bench's own logins must not be throttled
        "LOG_LEVEL": "WARNING",
    }
    command = [
        str(UVICORN),
        "main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    if pinning.used and pinning.server_cores:
        command = ["taskset", "-c", ",".join(map(str, pinning.server_cores)), *command]
    with log_path.open("wb") as log:
        return subprocess.Popen(command, cwd=BACKEND, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_until_healthy(base_url: str, server: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(base_url=base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"server exited with {server.returncode}:\n{tail(log_path)}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get("/health").status_code == 200:
                    return
            time.sleep(0.2)
    raise RuntimeError(f"server not healthy after {STARTUP_TIMEOUT_S:.0f} s:\n{tail(log_path)}")


def register_user(base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=LOGIN_TIMEOUT_S) as client:
        response = client.post(
            "/api/auth/register",
            json={"email": BENCH_EMAIL, "nickname": BENCH_NICKNAME, "password": BENCH_PASSWORD},
        )
        if response.status_code != 201:
            raise RuntimeError(f"register failed: {response.status_code} {response.text}")


# --------------------------------------------------------------------------- report


def build_report(
    results: list[PhaseResult],
    args: argparse.Namespace,
    pinning: Pinning,
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
) -> dict[str, Any]:
    idle = [r for r in results if r.kind == "idle"]
    loaded = [r for r in results if r.kind == "loaded"]
    idle_stats = summarise(to_ms([x for r in idle for x in r.health_latencies_s]))
    loaded_stats = summarise(to_ms([x for r in loaded for x in r.health_latencies_s]))
    ratio_p50 = loaded_stats["p50_ms"] / idle_stats["p50_ms"]
    ratio_p99 = loaded_stats["p99_ms"] / idle_stats["p99_ms"]

    statuses: Counter[str] = Counter()
    for r in loaded:
        statuses.update(r.login_statuses)
    sent = sum(r.logins_sent for r in loaded)
    loaded_seconds = sum(r.duration_s for r in loaded)
    login_ms = summarise(to_ms([x for r in loaded for x in r.login_latencies_s]))
    lag_ms = summarise(to_ms([x for r in loaded for x in r.send_lags_s]))

    return {
        "benchmark": "login_load",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "pinning": {
            "used": pinning.used,
            "server_cores": pinning.server_cores,
            "driver_cores": pinning.driver_cores,
            "how": pinning.reason,
        },
        "python": sys.version.split()[0],
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "settings": {
            "rate_per_s": args.rate,
            "rounds": args.rounds,
            "phase_duration_s": args.duration,
            "probe_interval_ms": PROBE_INTERVAL_S * 1000,
            "percentile_method": "linear interpolation between closest ranks (numpy 'linear')",
        },
        "health": {
            "idle": {**idle_stats, "errors": sum(r.health_errors for r in idle)},
            "loaded": {**loaded_stats, "errors": sum(r.health_errors for r in loaded)},
            "ratio_p50": ratio_p50,
            "ratio_p99": ratio_p99,
            "target_ratio": TARGET_RATIO,
            "pass": ratio_p50 <= TARGET_RATIO and ratio_p99 <= TARGET_RATIO,
        },
        "login": {
            "target_rate_per_s": args.rate,
            "sent": sent,
            "achieved_rate_per_s": sent / loaded_seconds if loaded_seconds else 0.0,
            "ok": statuses.get("200", 0),
            "errors": sum(n for status, n in statuses.items() if status != "200"),
            "statuses": dict(statuses),
            "latency": login_ms,
            "send_lag": lag_ms,
        },
        "rounds": [
            {
                "round": r.round_no,
                "phase": r.kind,
                "health": summarise(to_ms(r.health_latencies_s)),
                "health_errors": r.health_errors,
                "logins_sent": r.logins_sent,
                "login_statuses": dict(r.login_statuses),
                "cpu": cpu_percent(r.cpu),
            }
            for r in results
        ],
        "load_average_before": list(load_before),
        "load_average_after": list(load_after),
    }


def cpu_percent(use: CpuUse | None) -> dict[str, float] | None:
    """CPU use of a phase in percent of one core (100 = one core fully busy)."""
    if use is None or use.wall_s <= 0:
        return None
    return {
        "wall_s": use.wall_s,
        "server_pct": 100 * use.server_s / use.wall_s,
        "driver_pct": 100 * use.driver_s / use.wall_s,
        "other_pct": 100 * use.other_s / use.wall_s,
        "steal_pct": 100 * use.steal_s / use.wall_s,
    }


def print_report(report: dict[str, Any]) -> None:
    pin = report["pinning"]
    settings = report["settings"]
    if pin["used"]:
        pinned = f"server on CPU {pin['server_cores']}, driver on CPU {pin['driver_cores']}"
    else:
        pinned = f"no ({pin['how']})"
    print(
        f"\nlogin_load: {settings['rounds']} round(s) x [idle {settings['phase_duration_s']:g} s,"
        f" loaded {settings['phase_duration_s']:g} s], {settings['rate_per_s']:g} logins/s,"
        f" {report['cpu_count']} CPUs, pinning: {pinned}\n"
    )
    health = report["health"]
    print(f"{'phase':<8} {'samples':>7} {'p50_ms':>7} {'p90_ms':>7} {'p99_ms':>7} {'max_ms':>7}")
    for phase in ("idle", "loaded"):
        s = health[phase]
        print(
            f"{phase:<8} {s['samples']:>7} {s['p50_ms']:>7.2f} {s['p90_ms']:>7.2f}"
            f" {s['p99_ms']:>7.2f} {s['max_ms']:>7.2f}"
        )
    verdict = "PASS" if health["pass"] else "FAIL"
    print(
        f"ratio (loaded/idle) p50 {health['ratio_p50']:.2f} p99 {health['ratio_p99']:.2f}"
        f"   target <= {health['target_ratio']:g}  {verdict}"
    )
    errors = health["idle"]["errors"] + health["loaded"]["errors"]
    if errors:
        print(f"health errors: {errors}")

    login = report["login"]
    print(
        f"\nlogins: sent {login['sent']}, achieved {login['achieved_rate_per_s']:.2f}/s"
        f" (target {login['target_rate_per_s']:g}/s), ok {login['ok']}, errors {login['errors']}"
        f"  latency p50 {login['latency']['p50_ms']:.1f} ms p99 {login['latency']['p99_ms']:.1f} ms"
        f"  send lag p99 {login['send_lag']['p99_ms']:.2f} ms"
    )
    if login["errors"]:
        print(f"login statuses: {login['statuses']}")

    print("\nper round: health p50 / p99 ms; CPU in % of one core (server, driver, other programs)")
    disturbed: list[str] = []
    for row in report["rounds"]:
        h = row["health"]
        line = (
            f"  round {row['round']} {row['phase']:<7} {h['p50_ms']:7.2f} / {h['p99_ms']:7.2f}"
            f"  ({h['samples']} samples)"
        )
        cpu = row["cpu"]
        if cpu is not None:
            line += (
                f"  cpu server {cpu['server_pct']:3.0f}% driver {cpu['driver_pct']:3.0f}%"
                f" other {cpu['other_pct']:3.0f}%"
            )
            if cpu["other_pct"] > OTHER_CPU_WARN_PCT or cpu["steal_pct"] > OTHER_CPU_WARN_PCT:
                disturbed.append(f"round {row['round']} {row['phase']}")
        print(line)
    if disturbed:
        print(
            f"WARNING: other programs (or the hypervisor) took more than {OTHER_CPU_WARN_PCT:g}%"
            f" of a core during {', '.join(disturbed)}: those figures are disturbed;"
            " rerun on a quiet machine"
        )
    if not health["pass"]:
        print(f"\nFAIL: /health under login load exceeds {TARGET_RATIO:g}x its idle latency")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rate", type=float, default=20.0, help="logins per second (20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of [idle, loaded] (3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase (10)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results file")
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s phases (smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration = 1, 3.0
    if args.rate <= 0 or args.rounds < 1 or args.duration <= 0:
        parser.error("--rate and --duration must be positive and --rounds at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    pinning = choose_pinning()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-login-load-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        log_path = tmp / "server.log"
        server = start_server(tmp, port, pinning, log_path)
        try:
            if pinning.used and pinning.driver_cores:
                os.sched_setaffinity(0, set(pinning.driver_cores))
            wait_until_healthy(base_url, server, log_path)
            register_user(base_url)
            results = asyncio.run(
                run_rounds(base_url, server.pid, args.rate, args.rounds, args.duration)
            )
        finally:
            stop_process(server)
    report = build_report(results, args, pinning, load_before, os.getloadavg())
    print_report(report)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
