"""Helpers shared by the benchmark scripts (percentiles, core pinning, child processes)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile by linear interpolation between closest ranks.

    This is Hyndman & Fan type 7 (numpy's default, "linear"): with the samples sorted as
    x[0] <= ... <= x[n-1], the position is h = (n - 1) * pct / 100 and the result is
    x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]). p0 is the minimum and
    p100 the maximum. An empty list gives NaN.
    """
    if not values:
        return float("nan")
    ordered = sorted(values)
    h = (len(ordered) - 1) * pct / 100.0
    low = int(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def summarise(ms: list[float]) -> dict[str, float | int]:
    """Sample count and p50/p90/p99/max of millisecond values."""
    return {
        "samples": len(ms),
        "p50_ms": percentile(ms, 50),
        "p90_ms": percentile(ms, 90),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
    }


@dataclass(frozen=True)
class Pinning:
    used: bool
    server_cores: list[int] | None
    driver_cores: list[int] | None
    reason: str


def choose_pinning() -> Pinning:
    """On two or more cores: the server under test on the first core, the driver on the second."""
    cpu_count = os.cpu_count() or 1
    if cpu_count < 2:
        return Pinning(False, None, None, f"only {cpu_count} CPU")
    if shutil.which("taskset") is None or not hasattr(os, "sched_setaffinity"):
        return Pinning(False, None, None, "taskset or sched_setaffinity not available")
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return Pinning(False, None, None, f"this process may use only CPU {allowed}")
    return Pinning(True, [allowed[0]], [allowed[1]], "taskset + sched_setaffinity")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill after 10 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
