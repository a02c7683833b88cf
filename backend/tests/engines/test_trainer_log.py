"""Reading trainer_log.jsonl (incrementally, as LLaMA-Factory writes it) and listing what a run
left in its output_dir. The line shapes are copied from a real 0.9.5 run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.engines import (
    RunMetrics,
    TrainerLogReader,
    last_checkpoint,
    list_artifacts,
    list_checkpoints,
    parse_duration,
    read_metrics,
)


def line(step: int, total: int = 10, *, loss: float | None = 5.0, **extra: object) -> str:
    record: dict[str, object] = {
        "current_steps": step,
        "total_steps": total,
        "epoch": step / 4,
        "percentage": round(step / total * 100, 2),
        "elapsed_time": "0:00:01",
        "remaining_time": "0:01:05",
    }
    if loss is not None:
        record["loss"] = loss
        record["lr"] = 0.01
    record.update(extra)
    return json.dumps(record) + "\n"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:00:00", 0),
        ("0:01:05", 65),
        ("12:00:01", 43201),
        ("1 day, 2:03:04", 93784),
        ("3 days, 0:00:00", 259200),
        ("0:00:01.500000", 1),
        ("soon", None),
        (None, None),
        (12, None),
    ],
)
def test_parse_duration(text: object, seconds: int | None) -> None:
    assert parse_duration(text) == seconds


def test_incremental_reading_waits_for_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "trainer_log.jsonl"
    reader = TrainerLogReader(path)
    assert reader.read_new() == []  # no file yet
    path.write_text(line(1, loss=6.2) + line(2, loss=6.0)[:30])
    first = reader.read_new()
    assert [r["current_steps"] for r in first] == [1]
    assert reader.offset == len(line(1, loss=6.2))
    with open(path, "a") as fh:  # the engine finishes the line, and writes another
        fh.write(line(2, loss=6.0)[30:] + line(3, loss=5.9))
    assert [r["current_steps"] for r in reader.read_new()] == [2, 3]
    assert reader.read_new() == []
    # A reader built from a stored offset continues where the first one stopped.
    assert TrainerLogReader(path, offset=reader.offset).read_new() == []
    with open(path, "a") as fh:
        fh.write("not json\n" + json.dumps([1, 2]) + "\n" + line(4, loss=5.8))
    again = TrainerLogReader(path, offset=reader.offset)
    assert [r["current_steps"] for r in again.read_new()] == [4]
    assert again.skipped == 2


def test_a_replaced_log_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "trainer_log.jsonl"
    path.write_text(line(1) + line(2) + line(3))
    reader = TrainerLogReader(path)
    assert len(reader.read_new()) == 3
    path.write_text(line(1, loss=9.0))  # a fresh run (overwrite_output_dir) starts a new file
    assert [r["loss"] for r in reader.read_new()] == [9.0]


def test_progress_and_series_of_a_finished_run(tmp_path: Path) -> None:
    losses = [6.2289, 6.041, 5.929, 5.879, 5.747, 5.679, 5.658, 5.589, 5.549, 5.59]
    text = "".join(line(i + 1, loss=loss) for i, loss in enumerate(losses))
    text += line(10, loss=None)  # the last line repeats the final step without loss/lr
    (tmp_path / "trainer_log.jsonl").write_text(text)
    metrics = read_metrics(tmp_path)
    assert [p.step for p in metrics.series] == list(range(1, 11))
    assert [p.loss for p in metrics.series] == losses
    progress = metrics.progress
    assert progress is not None
    assert (progress.step, progress.total, progress.percentage) == (10, 10, 100.0)
    assert progress.loss == 5.59 and progress.lr == 0.01  # kept from the last line that had them
    assert progress.epoch == 2.5
    assert (progress.elapsed_s, progress.remaining_s) == (1, 65)


def test_a_resumed_run_replaces_the_steps_after_its_checkpoint() -> None:
    metrics = RunMetrics()
    first = [json.loads(line(s, 100, loss=10.0 - s)) for s in range(1, 9)]
    metrics.update(first)
    # resumed from checkpoint-5: steps 6.. come again; the old 6-8 must not linger
    metrics.update([json.loads(line(6, 100, loss=1.5))])
    assert [p.step for p in metrics.series] == [1, 2, 3, 4, 5, 6]
    assert metrics.series[-1].loss == 1.5
    assert metrics.progress is not None and metrics.progress.step == 6


def test_eval_lines_join_their_step() -> None:
    metrics = RunMetrics()
    metrics.update([json.loads(line(5, loss=4.0)), json.loads(line(5, loss=None, eval_loss=4.5))])
    (point,) = metrics.series
    assert (point.step, point.loss, point.lr, point.eval_loss) == (5, 4.0, 0.01, 4.5)
    assert metrics.progress is not None and metrics.progress.loss == 4.0


def test_non_finite_values_are_dropped() -> None:
    metrics = RunMetrics()
    metrics.update([{"current_steps": 1, "total_steps": 2, "loss": float("nan")}])
    assert metrics.series == []
    assert metrics.progress is not None and metrics.progress.loss is None
    assert metrics.progress.percentage == 50.0  # computed when the line has none


def _touch(path: Path, size: int = 10) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_artifacts_of_a_lora_run(tmp_path: Path) -> None:
    out = tmp_path / "output"
    _touch(out / "adapter_model.safetensors", 100)
    _touch(out / "adapter_config.json", 5)
    _touch(out / "trainer_log.jsonl")
    for step in (5, 10, 15):
        _touch(out / f"checkpoint-{step}" / "adapter_model.safetensors", 100)
        _touch(out / f"checkpoint-{step}" / "trainer_state.json", 1)
    _touch(out / "checkpoint-20" / "adapter_model.safetensors")  # cut short: no trainer_state
    _touch(out / "checkpoint-x" / "trainer_state.json")
    artifacts = list_artifacts(out, tmp_path / "merged")
    assert [p.name for p in artifacts.adapter_files] == [
        "adapter_model.safetensors",
        "adapter_config.json",
    ]
    assert artifacts.has_adapter and not artifacts.has_model
    assert artifacts.model_files == []
    assert [c.step for c in artifacts.checkpoints] == [5, 10, 15]
    assert artifacts.merged_dir is None
    assert artifacts.size_bytes == 105 + 3 * 101
    ckpt = last_checkpoint(out)
    assert ckpt is not None and ckpt.step == 15 and ckpt.path == out / "checkpoint-15"


def test_artifacts_of_a_full_run_and_a_merge(tmp_path: Path) -> None:
    out, merged = tmp_path / "output", tmp_path / "merged"
    _touch(out / "config.json")
    _touch(out / "model.safetensors", 1000)
    _touch(out / "training_args.bin")
    _touch(merged / "config.json")
    _touch(merged / "model-00001-of-00002.safetensors", 500)
    _touch(merged / "model-00002-of-00002.safetensors", 500)
    artifacts = list_artifacts(out, merged)
    assert artifacts.has_model and not artifacts.has_adapter
    assert [p.name for p in artifacts.model_files] == ["config.json", "model.safetensors"]
    assert artifacts.merged_dir == merged
    assert artifacts.size_bytes == 1010 + 1010


def test_nothing_yet(tmp_path: Path) -> None:
    artifacts = list_artifacts(tmp_path / "missing", tmp_path / "missing-too")
    assert (artifacts.adapter_files, artifacts.checkpoints, artifacts.merged_dir) == ([], [], None)
    assert last_checkpoint(tmp_path / "missing") is None
    assert list_checkpoints(tmp_path) == []
    assert read_metrics(tmp_path).progress is None


def test_listing_survives_checkpoints_rotated_away_while_it_runs(tmp_path: Path) -> None:
    """A running trainer keeps only its latest checkpoints (save_total_limit): folders appear and
    vanish while a request lists them. The listing must skip what vanished, never raise."""
    import shutil
    import threading
    import time

    out = tmp_path / "output"
    _touch(out / "adapter_config.json")
    stop = threading.Event()
    rotations = 0

    def trainer() -> None:
        nonlocal rotations
        step = 0
        while not stop.is_set():
            step += 1
            folder = out / f"checkpoint-{step}"
            for name in ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth"):
                _touch(folder / name, 64)
            old = out / f"checkpoint-{step - 2}"
            if old.exists():
                shutil.rmtree(old)
                rotations += 1

    thread = threading.Thread(target=trainer, daemon=True)
    thread.start()
    listings = 0
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            artifacts = list_artifacts(out)
            assert len(artifacts.checkpoints) <= 3
            assert artifacts.size_bytes >= 0
            listings += 1
    finally:
        stop.set()
        thread.join(5)
    assert rotations > 10 and listings > 10  # the race was really exercised
