"""How fast does dataset validation run, and does its memory stay flat?

Benchmark 2 of the training issue. A generated 1-million-row JSONL (alpaca rows of varied length,
about 150 bytes each) is validated by `app.services.dataset_formats.validate_file`, as an upload
is, in a fresh child process. Reported: rows/s, MB/s, and how far the child's peak RSS (VmHWM,
reset through /proc/self/clear_refs just before) rose above its RSS right before validation.
The same rows as a JSON array (read element by element) and as CSV (the csv module) are
measured too. Every file is checked to validate as `ready` with every row counted, so a fast
wrong answer cannot pass.

Target: peak RSS growth at most 200 MB for the 1-million-row JSONL. Validation keeps counters,
the first 100 errors and fixed-size samples of the lengths, so the growth should not depend on
the number of rows at all.

    .venv/bin/python bench/dataset_validation.py           # 1 000 000 rows: jsonl, json, csv
    .venv/bin/python bench/dataset_validation.py --quick   # 100 000 rows, jsonl only
    .venv/bin/python bench/dataset_validation.py --rows 200000 --formats jsonl,csv

A benchmark, not a test: it exits 0 whether or not the target is met, and prints FAIL.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_RSS_GROWTH_MB = 200.0
FORMATS = ("jsonl", "json", "csv")
WORDS = (
    *("model", "data", "train", "token", "answer", "question", "system", "value", "layer"),
    *("batch", "learning", "rate", "gradient", "loss", "epoch", "sample", "prompt", "reply"),
    *("context", "window", "memory", "stream", "数据", "模型", "训练"),
)


# ------------------------------------------------------------------------------- files


def _text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _rows(count: int) -> Any:
    rng = random.Random(20261125)
    for index in range(count):
        yield {
            "instruction": f"#{index} " + _text(rng, 2, 10),
            "input": _text(rng, 1, 5) if index % 4 == 0 else "",
            "output": _text(rng, 3, 20),
        }


def generate(path: Path, fmt: str, count: int) -> None:
    """Write `count` alpaca rows to `path` in `fmt`, streaming (the generator keeps no rows)."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        if fmt == "jsonl":
            for row in _rows(count):
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif fmt == "json":
            fh.write("[\n")
            for index, row in enumerate(_rows(count)):
                fh.write(("," if index else " ") + json.dumps(row, ensure_ascii=False) + "\n")
            fh.write("]\n")
        else:
            writer = csv.writer(fh)
            writer.writerow(["instruction", "input", "output"])
            for row in _rows(count):
                writer.writerow([row["instruction"], row["input"], row["output"]])


# ------------------------------------------------------------------------- child process


def _status_kb(field: str) -> int:
    """A memory figure of this process from /proc (kB), or the peak from getrusage."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def child(path: Path, fmt: str) -> None:
    """Validate one file and print what it took as one JSON line (runs in a fresh process)."""
    sys.path.insert(0, str(benchlib.BACKEND))
    from app.services.dataset_formats import validate_file

    # Start the peak (VmHWM) afresh, so that the imports' peak does not hide validation's.
    try:
        Path("/proc/self/clear_refs").write_text("5")
        peak_reset = True
    except OSError:
        peak_reset = False
    rss_before = _status_kb("VmRSS")
    start = time.perf_counter()
    result = validate_file(path, fmt)
    seconds = time.perf_counter() - start
    report = {
        "seconds": seconds,
        "rss_before_kb": rss_before,
        "peak_kb": _status_kb("VmHWM"),
        "peak_reset": peak_reset,
        "status": result.status,
        "detected_format": result.detected_format,
        "rows": result.rows,
        "valid_rows": result.valid_rows,
        "errors": result.errors[:3],
    }
    print(json.dumps(report))


def measure(path: Path, fmt: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), fmt],
        check=True,
        capture_output=True,
        text=True,
    )
    measured: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return measured


# ---------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per file (1000000)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="jsonl,json,csv")
    parser.add_argument("--out", type=Path, default=RESULTS / "dataset_validation.json")
    parser.add_argument("--quick", action="store_true", help="100 000 rows, jsonl only")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), args.child[1])
        return 0
    rows = 100_000 if args.quick else args.rows
    formats = ["jsonl"] if args.quick else [f.strip() for f in args.formats.split(",") if f]
    unknown = set(formats) - set(FORMATS)
    if unknown:
        parser.error(f"unknown formats: {', '.join(sorted(unknown))}")

    print(f"dataset validation: {rows} alpaca rows per file, formats {', '.join(formats)}")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-datasets-") as tmp:
        for fmt in formats:
            path = Path(tmp) / f"data.{fmt}"
            started = time.perf_counter()
            generate(path, fmt, rows)
            generated_s = time.perf_counter() - started
            size = path.stat().st_size
            measured = measure(path, fmt)
            path.unlink()
            growth_mb = (measured["peak_kb"] - measured["rss_before_kb"]) / 1024
            correct = (
                measured["status"] == "ready"
                and measured["detected_format"] == "alpaca"
                and measured["rows"] == rows == measured["valid_rows"]
            )
            results.append(
                {
                    "format": fmt,
                    "rows": rows,
                    "file_mb": size / 1e6,
                    "generate_s": generated_s,
                    "validate_s": measured["seconds"],
                    "rows_per_s": rows / measured["seconds"],
                    "mb_per_s": size / 1e6 / measured["seconds"],
                    "rss_before_mb": measured["rss_before_kb"] / 1024,
                    "peak_rss_growth_mb": growth_mb,
                    "peak_reset": measured["peak_reset"],
                    "correct": correct,
                    "validation": {
                        k: measured[k]
                        for k in ("status", "detected_format", "rows", "valid_rows", "errors")
                    },
                }
            )

    print()
    header = (
        f"{'format':<7}{'rows':>10}{'file MB':>10}{'seconds':>9}{'rows/s':>10}{'MB/s':>8}"
        f"{'RSS MB':>9}{'peak +MB':>10}  result"
    )
    print(header)
    print("-" * len(header))
    for item in results:
        print(
            f"{item['format']:<7}{item['rows']:>10}{item['file_mb']:>10.1f}"
            f"{item['validate_s']:>9.2f}{item['rows_per_s']:>10.0f}{item['mb_per_s']:>8.1f}"
            f"{item['rss_before_mb']:>9.1f}{item['peak_rss_growth_mb']:>10.2f}  "
            + ("ready, all rows valid" if item["correct"] else f"WRONG: {item['validation']}")
        )
    jsonl = next((item for item in results if item["format"] == "jsonl"), None)
    passed: bool | None = None
    if jsonl is not None:
        passed = jsonl["correct"] and jsonl["peak_rss_growth_mb"] <= TARGET_RSS_GROWTH_MB
    print()
    print(
        f"{benchlib.verdict(passed)}  JSONL peak RSS growth <= {TARGET_RSS_GROWTH_MB:.0f} MB"
        + (f" ({jsonl['peak_rss_growth_mb']:.1f} MB)" if jsonl else " (jsonl not measured)")
    )
    report = {
        **benchlib.platform_info(),
        "rows": rows,
        "formats": formats,
        "target_peak_rss_growth_mb": TARGET_RSS_GROWTH_MB,
        "passed": passed,
        "results": results,
    }
    benchlib.write_json(args.out, report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
