"""Training jobs: create (validated against the engine and this host), list / read / change /
delete, start / cancel / resume / export, and what a run leaves: metrics, logs, artifacts.

The processes themselves are run by `training_runner` (the supervisor): this module only changes
rows — a job is queued, or a cancel is requested — and wakes the supervisor, which starts,
watches and finalises the runs. Visibility is part of every query: users see their own jobs,
admins all; another user's job answers 404.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import zipfile
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, true, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import settings
from app.database import run_then_commit, session_scope
from app.engines import (
    INSTALL_HINT,
    EngineStatus,
    JobLayout,
    SpecProblem,
    TrainSpec,
    detect_gpus,
    engine_status,
    job_layout,
    list_templates,
    validate_spec,
)
from app.engines.llamafactory import train_cpu_threads, usable_cores
from app.engines.trainer_log import file_size, list_artifacts, list_checkpoints, tree_files
from app.exceptions import AppError, Conflict, FieldError, InvalidFields, NotFound
from app.models import (
    Dataset,
    ModelRuntime,
    TrainingJob,
    TrainingJobDataset,
    TrainingMetric,
    User,
)
from app.models.training import ACTIVE_STATUSES, FINAL_STATUSES
from app.schemas.common import Page
from app.schemas.model_config import OwnerRef
from app.schemas.training import (
    PARAM_NAMES,
    Artifact,
    EngineInfo,
    ExportRef,
    ExportRequest,
    JobDatasetRef,
    JobLogs,
    JobMetrics,
    JobProgress,
    MetricPointOut,
    SwanlabRun,
    TrainingJobCreate,
    TrainingJobDetail,
    TrainingJobPublic,
    TrainingJobUpdate,
)
from app.services import swanlab_service
from app.services.uploads import remove_tree, when_settled

LOG_TAIL_LINES = 200
LOG_SLICE_BYTES = 256 * 1024
EVENTS_POLL_S = 1.0
CANCEL_WAIT_S = 15.0
# Top-level files that travel with an adapter or a model so that the download loads as it is.
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "tokenizer.model",
)
# What a dataset's detected format means to the engine's stage check.
DATASET_KIND = {
    "alpaca": "sft",
    "sharegpt": "sft",
    "openai": "sft",
    "preference": "preference",
    "kto": "kto",
    "text": "text",
}


class EngineUnavailableError(AppError):
    status_code = 409
    code = "engine_unavailable"
    detail = f"The training engine is not installed; run `{INSTALL_HINT}`"


class InvalidState(Conflict):
    code = "invalid_state"


def _not_found() -> NotFound:
    return NotFound("Training job not found", code="job_not_found")


def engine_unavailable(status: EngineStatus) -> EngineUnavailableError:
    return EngineUnavailableError(
        f"The training engine is not available ({status.missing}); run `{status.install_hint}`"
    )


# --------------------------------------------------------------------------------- engine


def cpu_threads(gpus: list[str] | None = None) -> int | None:
    """The torch thread count each training or export process gets (TRAIN_CPU_THREADS; None:
    the engine's default). `gpus` saves a second detect_gpus()."""
    return train_cpu_threads(
        settings.TRAIN_CPU_THREADS,
        gpu_count=len(detect_gpus() if gpus is None else gpus),
        cores=usable_cores(),
        concurrent=settings.TRAIN_MAX_CONCURRENT,
        inherited=os.environ.get("OMP_NUM_THREADS"),
    )


def engine_info() -> EngineInfo:
    """Whether this server can train: the engine, its version, GPUs, quantization, templates,
    and the CPU threads a run gets."""
    status = engine_status()
    gpus = detect_gpus()
    return EngineInfo(
        available=status.available,
        version=status.version,
        version_supported=status.version_supported,
        missing=status.missing,
        install_hint=status.install_hint,
        gpus=gpus,
        quantization=status.quantization,
        templates=list(list_templates(status.bin_dir)) if status.available else [],
        cpu_threads=cpu_threads(gpus),
    )


def _require_engine() -> EngineStatus:
    status = engine_status()
    if not status.available:
        raise engine_unavailable(status)
    return status


# ------------------------------------------------------------------------------- the spec


def layout_of(job_id: int) -> JobLayout:
    return job_layout(job_id)


def dataset_entry_name(dataset_id: int) -> str:
    """The job-local dataset_info name of a dataset."""
    return f"ds_{dataset_id}"


def swanlab_options(config: dict[str, Any], job_id: int | None) -> dict[str, Any]:
    """SwanLab settings of a run: the job's choice (`use_swanlab` None: the server's
    configuration) within what the server's configuration allows."""
    options = swanlab_service.job_options()
    if not options.get("use_swanlab") or config.get("use_swanlab") is False:
        return {"use_swanlab": False}
    options = dict(options)
    if config.get("swanlab_project"):
        options["swanlab_project"] = config["swanlab_project"]
    options["swanlab_run_name"] = config.get("swanlab_run_name") or (
        f"job-{job_id}" if job_id is not None else None
    )
    return options


def build_spec(
    job: TrainingJob,
    layout: JobLayout,
    *,
    resume_from: Path | None = None,
    swanlab: dict[str, Any] | None = None,
) -> TrainSpec:
    """The TrainSpec of a job (its stored parameters) in its folder."""
    params = {name: job.config[name] for name in PARAM_NAMES if name in job.config}
    swan = swanlab or {"use_swanlab": False}
    logdir = swan.get("swanlab_logdir")
    return TrainSpec(
        base_model=job.base_model,
        template=job.template,
        datasets=tuple(dataset_entry_name(int(d["id"])) for d in job.datasets),
        dataset_dir=layout.data_dir,
        output_dir=layout.output_dir,
        stage=job.stage,
        finetuning_type=job.finetuning_type,
        use_swanlab=bool(swan.get("use_swanlab")),
        swanlab_project=swan.get("swanlab_project"),
        swanlab_workspace=swan.get("swanlab_workspace"),
        swanlab_run_name=swan.get("swanlab_run_name"),
        swanlab_mode=swan.get("swanlab_mode", "local"),
        swanlab_logdir=Path(logdir) if logdir else None,
        resume_from_checkpoint=resume_from,
        **params,
    )


def problems_of(
    spec: TrainSpec, status: EngineStatus, dataset_kinds: dict[str, str]
) -> list[SpecProblem]:
    """What keeps `spec` from running on this host with this engine."""
    return validate_spec(
        spec,
        gpu_available=bool(detect_gpus()),
        dataset_kinds=dataset_kinds,
        output_root=settings.TRAINING_OUTPUT_DIR,
        templates=list_templates(status.bin_dir) or None,
        quantization_available=status.quantization,
    )


def _field_errors(problems: list[SpecProblem]) -> InvalidFields:
    names = {"datasets": "dataset_ids"}
    return InvalidFields(
        [FieldError(("body", names.get(p.field, p.field)), p.message) for p in problems],
        code="invalid_training_spec",
    )


# ------------------------------------------------------------------------------ reading


def _visible(actor: User) -> ColumnElement[bool]:
    return true() if actor.is_admin else TrainingJob.owner_id == actor.id


def _get(db: Session, actor: User, job_id: int, *, lock: bool = False) -> TrainingJob:
    query = select(TrainingJob).where(TrainingJob.id == job_id, _visible(actor))
    if lock:
        query = query.with_for_update(of=TrainingJob)
    row = db.scalars(query).first()
    if row is None:
        raise _not_found()
    return row


def _queue_positions(db: Session) -> dict[int, int]:
    ids = db.scalars(
        select(TrainingJob.id)
        .where(TrainingJob.status == "queued")
        .order_by(TrainingJob.queued_at, TrainingJob.id)
    ).all()
    return {job_id: index + 1 for index, job_id in enumerate(ids)}


def progress_of(row: TrainingJob) -> JobProgress | None:
    if row.step is None:
        return None
    return JobProgress(
        step=row.step,
        total=row.total_steps or 0,
        percentage=row.percentage or 0.0,
        loss=row.loss,
        lr=row.lr,
        epoch=row.epoch,
        elapsed_s=row.elapsed_s,
        remaining_s=row.remaining_s,
    )


def _resumable(row: TrainingJob) -> bool:
    return (
        row.kind == "train"
        and row.status in ("failed", "cancelled")
        and bool(list_checkpoints(layout_of(row.id).output_dir))
    )


def to_public(row: TrainingJob, positions: dict[int, int]) -> TrainingJobPublic:
    return TrainingJobPublic(
        id=row.id,
        name=row.name,
        description=row.description,
        kind=row.kind,
        source_job_id=row.source_job_id,
        owner=OwnerRef(id=row.owner.id, nickname=row.owner.nickname),
        status=row.status,
        cancel_requested=row.cancel_requested,
        reason=row.reason,
        exit_code=row.exit_code,
        resumable=_resumable(row),
        queue_position=positions.get(row.id),
        attempt=row.attempt,
        base_model=row.base_model,
        template=row.template,
        stage=row.stage,
        finetuning_type=row.finetuning_type,
        datasets=[JobDatasetRef(id=d["id"], name=d["name"]) for d in row.datasets],
        params={name: row.config.get(name) for name in PARAM_NAMES if name in row.config},
        swanlab=SwanlabRun(**row.swanlab) if row.swanlab else SwanlabRun(),
        progress=progress_of(row),
        created_at=row.created_at,
        updated_at=row.updated_at,
        queued_at=row.queued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


@dataclass(frozen=True)
class ArtifactFiles:
    """One downloadable artifact: its description and the files it holds (arcname, path)."""

    artifact: Artifact
    files: list[tuple[str, Path]]


def _folder_files(folder: Path, prefix: str) -> list[tuple[str, Path]]:
    return [(f"{prefix}/{p.relative_to(folder).as_posix()}", p) for p in tree_files(folder)]


def _top_files(folder: Path, names: list[Path], prefix: str) -> list[tuple[str, Path]]:
    extra = [folder / name for name in _TOKENIZER_FILES if (folder / name).is_file()]
    seen: set[Path] = set()
    out: list[tuple[str, Path]] = []
    for path in [*names, *extra]:
        if path not in seen:
            seen.add(path)
            out.append((f"{prefix}/{path.name}", path))
    return out


def artifacts_of(row: TrainingJob) -> list[ArtifactFiles]:
    """The adapter, the full model, the checkpoints and the merged model a job left."""
    layout = layout_of(row.id)
    found = list_artifacts(layout.output_dir, layout.export_dir)
    items: list[ArtifactFiles] = []

    def add(name: str, kind: str, files: list[tuple[str, Path]], step: int | None = None) -> None:
        size = sum(file_size(path) for _, path in files)
        artifact = Artifact(
            name=name,
            kind=kind,
            size_bytes=size,
            file_count=len(files),
            step=step,
        )
        items.append(ArtifactFiles(artifact, files))

    if found.has_adapter:
        add("adapter", "adapter", _top_files(layout.output_dir, found.adapter_files, "adapter"))
    if found.has_model:
        add("model", "model", _top_files(layout.output_dir, found.model_files, "model"))
    if found.merged_dir is not None:
        add("merged", "merged", _folder_files(found.merged_dir, "merged"))
    for checkpoint in found.checkpoints:
        name = checkpoint.path.name
        add(name, "checkpoint", _folder_files(checkpoint.path, name), checkpoint.step)
    return items


def to_detail(db: Session, row: TrainingJob) -> TrainingJobDetail:
    exports = db.scalars(
        select(TrainingJob).where(TrainingJob.source_job_id == row.id).order_by(TrainingJob.id)
    ).all()
    public = to_public(row, _queue_positions(db))
    return TrainingJobDetail(
        **public.model_dump(),
        artifacts=[item.artifact for item in artifacts_of(row)],
        exports=[ExportRef(id=e.id, name=e.name, status=e.status) for e in exports],
    )


def list_jobs(
    db: Session,
    actor: User,
    *,
    page: int,
    size: int,
    scope: str = "all",
    status: str | None = None,
    kind: str | None = None,
    q: str | None = None,
) -> Page[TrainingJobPublic]:
    """Visible jobs, newest first (the dashboard reads this list)."""
    conditions: list[ColumnElement[bool]] = [_visible(actor)]
    if scope == "mine":
        conditions.append(TrainingJob.owner_id == actor.id)
    if status:
        conditions.append(TrainingJob.status == status)
    if kind:
        conditions.append(TrainingJob.kind == kind)
    if q and q.strip():
        pattern = "%" + q.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        conditions.append(TrainingJob.name.ilike(pattern + "%", escape="\\"))
    where = and_(*conditions)
    total = db.scalar(select(func.count(TrainingJob.id)).where(where)) or 0
    rows = db.scalars(
        select(TrainingJob)
        .where(where)
        .order_by(TrainingJob.created_at.desc(), TrainingJob.id.desc())
        .offset((page - 1) * size)
        .limit(size)
    ).all()
    positions = _queue_positions(db)
    return Page(
        items=[to_public(row, positions) for row in rows], total=total, page=page, size=size
    )


def get_job(db: Session, actor: User, job_id: int) -> TrainingJobDetail:
    """One visible job with its artifacts and exports."""
    return to_detail(db, _get(db, actor, job_id))


# ------------------------------------------------------------------------------ changing


def _datasets_for(db: Session, actor: User, ids: list[int]) -> list[Dataset]:
    unique = list(dict.fromkeys(ids))
    visible = (
        true() if actor.is_admin else or_(Dataset.owner_id == actor.id, Dataset.is_shared.is_(True))
    )
    rows = {
        row.id: row
        for row in db.scalars(select(Dataset).where(Dataset.id.in_(unique), visible)).all()
    }
    errors = [
        FieldError(("body", "dataset_ids", index), f"dataset {dataset_id} not found")
        for index, dataset_id in enumerate(unique)
        if dataset_id not in rows
    ]
    errors += [
        FieldError(
            ("body", "dataset_ids", index),
            f"dataset {rows[d].name!r} is invalid ({rows[d].error_count} problems); fix it first",
        )
        for index, d in enumerate(unique)
        if d in rows and (rows[d].status != "ready" or not rows[d].llamafactory)
    ]
    if errors:
        raise InvalidFields(errors, code="invalid_training_spec")
    return [rows[d] for d in unique]


def create_job(db: Session, actor: User, data: TrainingJobCreate) -> TrainingJobDetail:
    """Create a job from a validated spec (422 with field errors otherwise); `start` queues it."""
    status = _require_engine()
    datasets = _datasets_for(db, actor, data.dataset_ids)
    if data.use_swanlab and not swanlab_service.job_options().get("use_swanlab"):
        raise InvalidFields(
            [FieldError(("body", "use_swanlab"), "SwanLab is disabled on this server")],
            code="invalid_training_spec",
        )
    config = data.model_dump(include={*PARAM_NAMES, "use_swanlab", "swanlab_project",
                                      "swanlab_run_name"})  # fmt: skip
    row = TrainingJob(
        owner_id=actor.id,
        name=data.name,
        description=data.description,
        kind="train",
        status="created",
        base_model=data.base_model,
        template=data.template,
        stage=data.stage,
        finetuning_type=data.finetuning_type,
        config=config,
        datasets=[
            {"id": d.id, "name": d.name, "kind": DATASET_KIND.get(d.detected_format, "unknown")}
            for d in datasets
        ],
        swanlab={},
    )
    # Checked before the row exists: a placeholder folder stands in for the job's own.
    probe_layout = JobLayout(settings.TRAINING_OUTPUT_DIR / "new")
    spec = build_spec(row, probe_layout, swanlab=swanlab_options(config, None))
    kinds = {dataset_entry_name(d["id"]): d["kind"] for d in row.datasets}
    problems = problems_of(spec, status, kinds)
    if data.swanlab_project is not None and not data.swanlab_project.strip():
        problems.append(SpecProblem("swanlab_project", "must not be empty"))
    if problems:
        raise _field_errors(problems)
    db.add(row)
    db.flush()
    db.add_all(TrainingJobDataset(job_id=row.id, dataset_id=d.id) for d in datasets)
    if data.start:
        _queue(row)
    db.flush()
    _wake_after_commit(db)
    return to_detail(db, row)


def update_job(db: Session, actor: User, job_id: int, data: TrainingJobUpdate) -> TrainingJobDetail:
    """Rename or describe a job."""
    row = _get(db, actor, job_id)
    for key, value in data.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(row, key, value)
    db.flush()
    return to_detail(db, row)


def _wake_after_commit(db: Session) -> None:
    from app.services.training_runner import supervisor

    when_settled(db, on_commit=supervisor.wake)


def _queue(row: TrainingJob, *, resume: bool = False) -> None:
    row.status = "queued"
    row.queued_at = datetime.now(UTC)
    row.cancel_requested = False
    row.resume_requested = resume
    row.reason = None
    row.exit_code = None
    row.finished_at = None


def start_job(db: Session, actor: User, job_id: int) -> TrainingJobDetail:
    """Queue a job (a finished one starts again from scratch)."""
    _require_engine()
    row = _get(db, actor, job_id, lock=True)
    if row.status in ACTIVE_STATUSES:
        raise InvalidState(f"The job is already {row.status}")
    if row.kind == "export" and row.source_job_id is None:
        raise InvalidState("The job this export merges was deleted", code="source_missing")
    _queue(row)
    db.flush()
    _wake_after_commit(db)
    return to_detail(db, row)


def resume_job(db: Session, actor: User, job_id: int) -> TrainingJobDetail:
    """Queue a failed or cancelled job to continue from its last checkpoint."""
    _require_engine()
    row = _get(db, actor, job_id, lock=True)
    if row.kind != "train" or row.status not in ("failed", "cancelled"):
        raise InvalidState("Only a failed or cancelled training job can be resumed")
    if not list_checkpoints(layout_of(row.id).output_dir):
        raise Conflict(
            "The run saved no checkpoint to resume from (one is saved every save_steps "
            "steps); start it again instead",
            code="no_checkpoint",
        )
    _queue(row, resume=True)
    db.flush()
    _wake_after_commit(db)
    return to_detail(db, row)


def _request_cancel(db: Session, actor: User, job_id: int) -> tuple[str, TrainingJobDetail | None]:
    """Cancel a queued job at once, or mark a running one for the supervisor to stop."""
    row = _get(db, actor, job_id, lock=True)
    if row.status == "queued":
        row.status = "cancelled"
        row.finished_at = datetime.now(UTC)
        row.reason = "cancelled before it started"
        db.flush()
        return "done", to_detail(db, row)
    if row.status != "running":
        raise InvalidState(f"The job is {row.status}, not queued or running")
    row.cancel_requested = True
    db.flush()
    _wake_after_commit(db)
    return "wait", None


def _read_detail(actor: User, job_id: int) -> TrainingJobDetail:
    with session_scope() as db:
        return get_job(db, actor, job_id)


async def cancel_job(db: Session, actor: User, job_id: int) -> TrainingJobDetail:
    """Cancel a job: a queued one at once; a running one is stopped by the supervisor (the
    engine saves what it can, all gone within 10 s), and this waits for that."""
    _, detail = await run_then_commit(db, _request_cancel, db, actor, job_id)
    if detail is not None:
        return detail
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CANCEL_WAIT_S
    while True:
        detail = await run_in_threadpool(_read_detail, actor, job_id)
        if detail.status != "running" or loop.time() > deadline:
            return detail
        await asyncio.sleep(0.2)


def export_job(db: Session, actor: User, job_id: int, data: ExportRequest) -> TrainingJobDetail:
    """Queue a merge of a LoRA adapter into its base model, as a job of its own."""
    _require_engine()
    source = _get(db, actor, job_id)
    if source.kind != "train" or source.finetuning_type not in ("lora", "qlora"):
        raise InvalidState("Only a LoRA or QLoRA training job has an adapter to merge")
    if source.status in ACTIVE_STATUSES:
        raise InvalidState("Wait until the training run has ended")
    if not list_artifacts(layout_of(source.id).output_dir).has_adapter:
        raise InvalidState("This job saved no adapter to merge", code="no_adapter")
    row = TrainingJob(
        owner_id=actor.id if not actor.is_admin else source.owner_id,
        name=f"{source.name}-merged"[:100],
        description=f"Adapter of job {source.id} merged into {source.base_model}",
        kind="export",
        source_job_id=source.id,
        status="created",
        base_model=source.base_model,
        template=source.template,
        stage=source.stage,
        finetuning_type=source.finetuning_type,
        config={"export_dtype": data.export_dtype},
        datasets=list(source.datasets),
        swanlab={},
    )
    db.add(row)
    db.flush()
    _queue(row)
    db.flush()
    _wake_after_commit(db)
    return to_detail(db, row)


def delete_job(db: Session, actor: User, job_id: int) -> None:
    """Delete a job that is not running and whose output no loaded model serves, with its
    folder (once the deletion is committed)."""
    row = _get(db, actor, job_id, lock=True)
    if row.status == "running":
        raise Conflict("The job is running; cancel it first", code="job_running")
    busy = db.scalar(
        select(func.count(TrainingJob.id)).where(
            TrainingJob.source_job_id == row.id, TrainingJob.status.in_(ACTIVE_STATUSES)
        )
    )
    if busy:
        raise Conflict("An export of this job is queued or running", code="job_running")
    served = db.scalar(
        select(func.count(ModelRuntime.id)).where(
            ModelRuntime.job_id == row.id, ModelRuntime.status.in_(("loading", "ready"))
        )
    )
    if served:
        raise Conflict(
            "A deployed model serves this job's output; unload it first", code="job_in_use"
        )
    folder = layout_of(row.id).root
    db.delete(row)
    db.flush()
    when_settled(db, on_commit=lambda: remove_tree(folder))


def before_owner_delete(db: Session, owner_id: int) -> None:
    """Call before deleting a user: refused while their jobs run; their job folders go once the
    deletion is committed (the rows go by ON DELETE CASCADE)."""
    active = db.scalar(
        select(func.count(TrainingJob.id)).where(
            TrainingJob.owner_id == owner_id, TrainingJob.status == "running"
        )
    )
    if active:
        raise Conflict("This user has a running training job; cancel it first", code="job_running")
    ids = db.scalars(select(TrainingJob.id).where(TrainingJob.owner_id == owner_id)).all()
    folders = [layout_of(job_id).root for job_id in ids]

    def remove() -> None:
        for folder in folders:
            remove_tree(folder)

    if folders:
        when_settled(db, on_commit=remove)


def jobs_using_dataset(db: Session, dataset_id: int) -> int:
    """Queued or running jobs that will read this dataset's file."""
    return (
        db.scalar(
            select(func.count(TrainingJob.id))
            .join(TrainingJobDataset, TrainingJobDataset.job_id == TrainingJob.id)
            .where(
                TrainingJobDataset.dataset_id == dataset_id,
                TrainingJob.status.in_(ACTIVE_STATUSES),
            )
        )
        or 0
    )


def status_counts(db: Session, owner_id: int | None) -> dict[str, int]:
    """Jobs by status (of one owner, or of everybody)."""
    query = select(TrainingJob.status, func.count(TrainingJob.id)).group_by(TrainingJob.status)
    if owner_id is not None:
        query = query.where(TrainingJob.owner_id == owner_id)
    counts = {status: 0 for status in ("created", *ACTIVE_STATUSES, *FINAL_STATUSES)}
    for status, count in db.execute(query).all():
        counts[status] = int(count)
    return counts


# --------------------------------------------------------------- what a run leaves behind


def metrics(db: Session, actor: User, job_id: int, after_step: int | None) -> JobMetrics:
    """The metrics series (points after `after_step`) and the current progress."""
    row = _get(db, actor, job_id)
    query = select(TrainingMetric).where(TrainingMetric.job_id == row.id)
    if after_step is not None:
        query = query.where(TrainingMetric.step > after_step)
    points = db.scalars(query.order_by(TrainingMetric.step)).all()
    return JobMetrics(
        progress=progress_of(row),
        points=[
            MetricPointOut(step=p.step, loss=p.loss, lr=p.lr, epoch=p.epoch, eval_loss=p.eval_loss)
            for p in points
        ],
    )


def log_path_of(row: TrainingJob) -> Path:
    layout = layout_of(row.id)
    return layout.export_log if row.kind == "export" else layout.train_log


def read_log(path: Path, offset: int | None) -> JobLogs:
    """Whole lines of a log from byte `offset` (at most LOG_SLICE_BYTES), or its last lines."""
    try:
        size = path.stat().st_size
    except OSError:
        return JobLogs(offset=0, next_offset=0, size=0, lines=[], truncated=False)
    if offset is None:
        start = max(0, size - LOG_SLICE_BYTES)
    else:
        start = min(offset, size) if offset <= size else 0  # a shorter file was replaced
    with open(path, "rb") as fh:
        fh.seek(start)
        data = fh.read(LOG_SLICE_BYTES)
    end = data.rfind(b"\n")
    truncated = False
    if end < 0:
        if len(data) >= LOG_SLICE_BYTES:  # one huge line: hand it over cut
            end, truncated = len(data) - 1, True
        else:
            return JobLogs(offset=start, next_offset=start, size=size, lines=[], truncated=False)
    chunk = data[: end + 1]
    next_offset = start + len(chunk)
    text = chunk.decode("utf-8", errors="replace")
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n")[:-1]]
    if offset is None:
        if start > 0 and lines:
            lines = lines[1:]  # the first one is probably cut
        lines = lines[-LOG_TAIL_LINES:]
    return JobLogs(
        offset=start,
        next_offset=next_offset,
        size=size,
        lines=lines,
        truncated=truncated or next_offset < size,
    )


def logs(db: Session, actor: User, job_id: int, offset: int | None) -> JobLogs:
    """A slice of the job's log (see read_log)."""
    row = _get(db, actor, job_id)
    return read_log(log_path_of(row), offset)


def artifacts(db: Session, actor: User, job_id: int) -> list[Artifact]:
    """What a visible job left that can be downloaded."""
    return [item.artifact for item in artifacts_of(_get(db, actor, job_id))]


def artifact_files(db: Session, actor: User, job_id: int, name: str) -> ArtifactFiles:
    """The files of one artifact (404 when there is no such artifact)."""
    row = _get(db, actor, job_id)
    for item in artifacts_of(row):
        if item.artifact.name == name:
            return item
    raise NotFound("No such artifact", code="artifact_not_found")


class _ZipSink:
    """A write-only file for ZipFile that hands its bytes over as they come (not seekable,
    so zipfile writes data descriptors and never rewinds)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks.clear()
        return out


@dataclass
class OpenedFile:
    """A file of an artifact, opened before the download starts."""

    arcname: str
    handle: IO[bytes]
    stat: os.stat_result


def open_artifact(item: ArtifactFiles) -> list[OpenedFile]:
    """Open every file of `item` at once, before the response starts: a running job may rotate
    a checkpoint away mid-download, and an open handle still reads the whole file, so the zip is
    complete. A file already gone makes the whole artifact gone (404), never a partial zip."""
    opened: list[OpenedFile] = []
    try:
        for arcname, path in item.files:
            handle = open(path, "rb")  # noqa: SIM115 - closed by zip_stream or below
            opened.append(OpenedFile(arcname, handle, os.fstat(handle.fileno())))
    except BaseException as exc:
        for entry in opened:
            entry.handle.close()
        if isinstance(exc, FileNotFoundError):
            raise NotFound(
                f"Artifact '{item.artifact.name}' was removed while it was being read "
                "(a running job keeps only its latest checkpoints); reload the list",
                code="artifact_not_found",
            ) from None
        raise
    return opened


def zip_stream(files: list[OpenedFile], chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """A zip of the opened `files` (stored, not compressed: weights do not shrink), produced
    piece by piece with flat memory; every handle is closed at the end."""
    sink = _ZipSink()
    try:
        with zipfile.ZipFile(
            cast(IO[bytes], sink), "w", compression=zipfile.ZIP_STORED, allowZip64=True
        ) as archive:
            for entry in files:
                info = zipfile.ZipInfo(entry.arcname, time.localtime(entry.stat.st_mtime)[:6])
                info.external_attr = (entry.stat.st_mode & 0xFFFF) << 16
                info.file_size = entry.stat.st_size
                info.compress_type = zipfile.ZIP_STORED
                with archive.open(info, "w", force_zip64=True) as dst:
                    while block := entry.handle.read(chunk):
                        dst.write(block)
                        if sink.position and sink.chunks:
                            yield sink.take()
                entry.handle.close()
                yield sink.take()
        if rest := sink.take():
            yield rest
    finally:
        for entry in files:
            entry.handle.close()


# ----------------------------------------------------------------------------- live events


def _frame(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False, default=str)}\n\n".encode()


def _snapshot(
    actor: User, job_id: int, after_step: int
) -> tuple[TrainingJobPublic, list[MetricPointOut], Path]:
    with session_scope() as db:
        row = _get(db, actor, job_id)
        public = to_public(row, _queue_positions(db))
        points = db.scalars(
            select(TrainingMetric)
            .where(TrainingMetric.job_id == row.id, TrainingMetric.step > after_step)
            .order_by(TrainingMetric.step)
        ).all()
        return (
            public,
            [
                MetricPointOut(
                    step=p.step, loss=p.loss, lr=p.lr, epoch=p.epoch, eval_loss=p.eval_loss
                )
                for p in points
            ],
            log_path_of(row),
        )


def check_visible(db: Session, actor: User, job_id: int) -> None:
    """404 unless the actor may see the job (before a stream starts)."""
    _get(db, actor, job_id)


async def events(
    actor: User, job_id: int, *, log_offset: int | None, after_step: int | None
) -> AsyncGenerator[bytes, None]:
    """SSE frames of a job: `job` on every change, new `metrics` points, new `log` lines, and
    `end` once it is in a final state. Each poll opens its own short session: no database
    connection is held while the stream waits."""
    last_job: str | None = None
    step = after_step if after_step is not None else -1
    offset = log_offset
    while True:
        try:
            public, points, log_path = await run_in_threadpool(_snapshot, actor, job_id, step)
        except NotFound:
            yield _frame({"type": "error", "code": "job_not_found", "message": "job deleted"})
            yield b"data: [ERROR]\n\n"
            return
        encoded = public.model_dump_json()
        if encoded != last_job:
            last_job = encoded
            yield _frame({"type": "job", "job": public.model_dump(mode="json")})
        if points:
            step = points[-1].step
            yield _frame({"type": "metrics", "points": [p.model_dump() for p in points]})
        while True:
            chunk = await run_in_threadpool(read_log, log_path, offset)
            if offset is None or chunk.lines or chunk.next_offset != offset:
                offset = chunk.next_offset
                if chunk.lines:
                    yield _frame(
                        {"type": "log", "lines": chunk.lines, "next_offset": chunk.next_offset}
                    )
            if not chunk.truncated or not chunk.lines:
                break
        if public.status not in ACTIVE_STATUSES:
            yield _frame({"type": "end", "status": public.status})
            yield b"data: [DONE]\n\n"
            return
        await asyncio.sleep(EVENTS_POLL_S)


def delete_metrics(db: Session, job_id: int) -> None:
    db.execute(delete(TrainingMetric).where(TrainingMetric.job_id == job_id))


def reset_progress(db: Session, job_id: int) -> None:
    db.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id)
        .values(
            step=None,
            total_steps=None,
            percentage=None,
            loss=None,
            lr=None,
            epoch=None,
            elapsed_s=None,
            remaining_s=None,
            metrics_offset=0,
        )
    )
