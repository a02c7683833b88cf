"""Many API requests at once against one worker: no errors, and latency that grows smoothly.

A request that holds a pooled database connection while it waits for a thread-pool hop can
deadlock the server once more requests are in flight than the pool has connections: the
waiting ones take every thread, the holders never get one back, and checkouts time out (500
after 30 s). This script sends C concurrent requests (closed loop: C clients, each sending its
next request when the previous one answered) to a read endpoint (GET /api/chat/sessions/{id})
and a write endpoint (POST /api/chat/messages) and reports errors and latency per level.

Target: no errors at every level (100 concurrent included); p99 grows no faster than the
concurrency (a queue, not a stall).

    .venv/bin/python bench/api_concurrency.py [--levels 10,40,100] [--requests 300] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

TIMEOUT_S = 60.0
RESULTS = Path(__file__).resolve().parent / "results"


async def _level(
    base_url: str, token: str, session_ids: list[int], concurrency: int, total: int, write: bool
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url,
        timeout=TIMEOUT_S,
        limits=limits,
        headers={"Authorization": f"Bearer {token}"},
    ) as client:

        async def worker(index: int) -> None:
            nonlocal sent
            while sent < total:
                sent += 1
                session_id = session_ids[(index + sent) % len(session_ids)]
                started = time.perf_counter()
                try:
                    if write:
                        response = await client.post(
                            "/api/chat/messages",
                            json={"session_id": session_id, "role": "user", "content": "hi"},
                        )
                        ok = response.status_code == 201
                    else:
                        response = await client.get(f"/api/chat/sessions/{session_id}")
                        ok = response.status_code == 200
                    kind = None if ok else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    kind = type(exc).__name__
                latencies.append((time.perf_counter() - started) * 1000)
                if kind:
                    errors[kind] = errors.get(kind, 0) + 1

        # Open the C connections first, a few at a time: a storm of simultaneous connects loses
        # SYNs to the kernel's accept queue here and costs 1-3 s retransmits that have nothing to
        # do with the server (GET /health shows the same without the warm-up).
        opening = asyncio.Semaphore(8)

        async def warm() -> None:
            async with opening:
                await client.get("/health")

        await asyncio.gather(*(warm() for _ in range(concurrency)))
        wall = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        wall_s = time.perf_counter() - wall
    return {
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "latency": benchlib.summarise(latencies),
        "throughput_rps": round(len(latencies) / wall_s, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="10,40,100", help="concurrent clients (10,40,100)")
    parser.add_argument("--requests", type=int, default=300, help="requests per level (300)")
    parser.add_argument("--out", type=Path, default=RESULTS / "api_concurrency.json")
    parser.add_argument("--quick", action="store_true", help="levels 10,100 with 150 requests")
    args = parser.parse_args()
    levels = [10, 100] if args.quick else [int(x) for x in args.levels.split(",")]
    total = 150 if args.quick else args.requests
    pinning = benchlib.choose_pinning()
    benchlib.raise_fd_limit(4096)

    report: dict[str, Any] = {
        "benchmark": "api_concurrency",
        **benchlib.platform_info(),
        "pinning": {
            "used": pinning.used,
            "server_cores": pinning.server_cores,
            "how": pinning.reason,
        },
        "settings": {"levels": levels, "requests_per_level": total},
        "results": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-api-concurrency-") as tmp_name:
        tmp = Path(tmp_name)
        port = benchlib.free_port()
        server = benchlib.start_backend(tmp, port, tmp / "server.log", pinning.server_cores)
        base_url = f"http://127.0.0.1:{port}"
        try:
            benchlib.wait_until_ok(f"{base_url}/health", server, tmp / "server.log", "server")
            token = benchlib.sign_in(base_url)
            # A config is not needed to store messages; sessions alone.
            with httpx.Client(
                base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as client:
                session_ids = [
                    client.post("/api/chat/sessions", json={"title": f"s{i}"}).json()["id"]
                    for i in range(20)
                ]
            print(
                f"{'conc':>5} {'kind':<6} {'reqs':>5} {'err':>4} {'p50':>8} {'p99':>8} "
                f"{'max':>8} {'req/s':>7}"
            )
            for write in (False, True):
                kind = "write" if write else "read"
                for level in levels:
                    result = asyncio.run(_level(base_url, token, session_ids, level, total, write))
                    report["results"][f"{kind}@{level}"] = result
                    lat = result["latency"]
                    print(
                        f"{level:>5} {kind:<6} {result['requests']:>5} {result['errors']:>4} "
                        f"{lat['p50_ms']:>8.1f} {lat['p99_ms']:>8.1f} {lat['max_ms']:>8.1f} "
                        f"{result['throughput_rps']:>7.1f}"
                        + (f"  {result['error_kinds']}" if result["errors"] else "")
                    )
        finally:
            benchlib.stop_process(server)
    failed = sum(r["errors"] for r in report["results"].values())
    report["pass"] = failed == 0
    print()
    print(f"{benchlib.verdict(failed == 0)}  no failed request at any level ({failed} failed)")
    benchlib.write_json(args.out, report)
    print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
