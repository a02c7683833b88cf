"""What a LLaMA-Factory run leaves in its output_dir: progress from `trainer_log.jsonl`, and the
artifacts (adapter, full model, checkpoints, merged export).

LLaMA-Factory's LogCallback appends one JSON object per logging step:
`{"current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time",
"remaining_time"}` (times as `str(timedelta)`, i.e. "H:MM:SS" or "N days, H:MM:SS"), and a last
line on train end that repeats the final step without `loss`/`lr`. Evaluation lines carry
`eval_loss`. A resumed run appends again from the checkpoint's step + 1, so steps repeat: the
later attempt wins, and what the earlier one logged past the checkpoint is dropped.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TRAINER_LOG = "trainer_log.jsonl"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_DURATION_RE = re.compile(r"^\s*(?:(\d+) days?, )?(\d+):(\d{1,2}):(\d{1,2})(?:\.\d+)?\s*$")

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin", "adapter_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def parse_duration(value: object) -> int | None:
    """Seconds in a `str(timedelta)` string ("0:01:05", "1 day, 2:03:04"); None otherwise."""
    if not isinstance(value, str):
        return None
    match = _DURATION_RE.match(value)
    if not match:
        return None
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _int(value: object) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


@dataclass(frozen=True)
class Progress:
    """Where a run stands, from its latest trainer_log line. `loss`/`lr` come from the latest
    line that had them (the final line has neither)."""

    step: int
    total: int
    loss: float | None
    lr: float | None
    epoch: float | None
    percentage: float
    elapsed_s: int | None
    remaining_s: int | None


@dataclass(frozen=True)
class MetricPoint:
    """One logged step of the metrics series."""

    step: int
    loss: float | None = None
    lr: float | None = None
    epoch: float | None = None
    eval_loss: float | None = None


@dataclass
class TrainerLogReader:
    """Reads `trainer_log.jsonl` incrementally. Keep `offset` (bytes consumed) to continue later,
    also in another process: only whole lines are consumed, so a line the engine is still writing
    is read next time. A file shorter than `offset` (a fresh run replaced it) is read anew."""

    path: Path
    offset: int = 0
    skipped: int = 0  # lines that were not JSON objects

    def read_new(self) -> list[dict[str, Any]]:
        """The records appended since the last call."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                if size < self.offset:
                    self.offset = 0
                fh.seek(self.offset)
                data = fh.read(size - self.offset)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        records: list[dict[str, Any]] = []
        for line in data[: end + 1].splitlines():
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                self.skipped += 1
                continue
            if isinstance(record, dict) and _int(record.get("current_steps")) is not None:
                records.append(record)
            else:
                self.skipped += 1
        return records


@dataclass
class RunMetrics:
    """Progress and the metrics series, fed record by record (`update`)."""

    progress: Progress | None = None
    points: dict[int, MetricPoint] = field(default_factory=dict)

    def update(self, records: Iterable[dict[str, Any]]) -> None:
        """Fold new trainer_log records in (a repeated step replaces the earlier one)."""
        for record in records:
            step = _int(record.get("current_steps"))
            if step is None:
                continue
            if self.progress is not None and step < self.progress.step:
                # A resumed run starts again after its checkpoint: the steps the previous
                # attempt logged past that point were lost with it.
                self.points = {k: v for k, v in self.points.items() if k < step}
            loss, lr = _number(record.get("loss")), _number(record.get("lr"))
            epoch, eval_loss = _number(record.get("epoch")), _number(record.get("eval_loss"))
            if loss is not None or eval_loss is not None:
                old = self.points.get(step)
                if old is not None:  # e.g. an eval line for a step whose train line came first
                    loss = loss if loss is not None else old.loss
                    lr = lr if lr is not None else old.lr
                    eval_loss = eval_loss if eval_loss is not None else old.eval_loss
                self.points[step] = MetricPoint(step, loss, lr, epoch, eval_loss)
            prev = self.progress
            total = _int(record.get("total_steps")) or (prev.total if prev else 0)
            percentage = _number(record.get("percentage"))
            if percentage is None:
                percentage = round(step / total * 100, 2) if total else 0.0
            self.progress = Progress(
                step=step,
                total=total,
                loss=loss if loss is not None or prev is None else prev.loss,
                lr=lr if lr is not None or prev is None else prev.lr,
                epoch=epoch if epoch is not None or prev is None else prev.epoch,
                percentage=percentage,
                elapsed_s=parse_duration(record.get("elapsed_time")),
                remaining_s=parse_duration(record.get("remaining_time")),
            )

    @property
    def series(self) -> list[MetricPoint]:
        """The metrics, one point per step, in step order."""
        return [self.points[step] for step in sorted(self.points)]


def read_metrics(output_dir: Path) -> RunMetrics:
    """Everything in output_dir/trainer_log.jsonl at once (for a finished or re-attached run)."""
    metrics = RunMetrics()
    metrics.update(TrainerLogReader(output_dir / TRAINER_LOG).read_new())
    return metrics


@dataclass(frozen=True)
class Checkpoint:
    """A `checkpoint-<step>` folder the Trainer saved completely (it holds trainer_state.json)."""

    step: int
    path: Path


@dataclass(frozen=True)
class Artifacts:
    """What a run produced. Paths are absolute; `size_bytes` totals every listed file/folder."""

    adapter_files: list[Path]
    model_files: list[Path]  # full / freeze fine-tuning saves the whole model
    checkpoints: list[Checkpoint]
    merged_dir: Path | None
    size_bytes: int

    @property
    def has_adapter(self) -> bool:
        return any(p.name.startswith("adapter_model") for p in self.adapter_files)

    @property
    def has_model(self) -> bool:
        return any(p.suffix in WEIGHT_SUFFIXES for p in self.model_files)


def file_size(path: Path) -> int:
    """The size of a file, or 0 when it is gone: a running trainer rotates its checkpoints
    (save_total_limit), so anything listed a moment ago may have been removed since."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def tree_files(folder: Path) -> list[Path]:
    """Every regular file (no symlinks) under `folder`, sorted, skipping whatever vanishes or
    cannot be read while it is walked."""
    found: list[Path] = []
    for root, _dirs, names in os.walk(folder, onerror=lambda _err: None):
        for name in names:
            path = Path(root) / name
            if not path.is_symlink() and path.is_file():
                found.append(path)
    return sorted(found)


def _tree_size(path: Path) -> int:
    if path.is_file():
        return file_size(path)
    return sum(file_size(p) for p in tree_files(path))


def list_checkpoints(output_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints in step order (a folder cut short by a kill lacks trainer_state.json
    and is left out)."""
    found: list[Checkpoint] = []
    for entry in _entries(output_dir):
        match = CHECKPOINT_RE.match(entry.name)
        if match and entry.is_dir() and (entry / "trainer_state.json").is_file():
            found.append(Checkpoint(int(match.group(1)), entry))
    return sorted(found, key=lambda c: c.step)


def last_checkpoint(output_dir: Path) -> Checkpoint | None:
    """The checkpoint to resume from, or None."""
    checkpoints = list_checkpoints(output_dir)
    return checkpoints[-1] if checkpoints else None


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def _looks_like_model(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        p.suffix in WEIGHT_SUFFIXES and not p.name.startswith(("adapter_", "training_args"))
        for p in _entries(folder)
    )


def list_artifacts(output_dir: Path, export_dir: Path | None = None) -> Artifacts:
    """The adapter files, full-model files and checkpoints in `output_dir`, and `export_dir`
    when it holds a merged model."""
    adapter: list[Path] = []
    model: list[Path] = []
    if output_dir.is_dir():
        adapter = [output_dir / name for name in ADAPTER_FILES if (output_dir / name).is_file()]
        if _looks_like_model(output_dir):
            model = sorted(
                p
                for p in _entries(output_dir)
                if p.is_file()
                and (
                    p.name in ("config.json", "generation_config.json")
                    or (p.name.startswith("model") and p.suffix in (*WEIGHT_SUFFIXES, ".json"))
                )
            )
    checkpoints = list_checkpoints(output_dir)
    merged = export_dir if export_dir is not None and export_dir.is_dir() else None
    if merged is not None and not _looks_like_model(merged):
        merged = None
    size = sum(file_size(p) for p in [*adapter, *model])
    size += sum(_tree_size(c.path) for c in checkpoints)
    if merged is not None:
        size += _tree_size(merged)
    return Artifacts(adapter, model, checkpoints, merged, size)
