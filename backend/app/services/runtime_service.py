"""Model runtimes (`/api/model`): models the platform serves itself with vLLM (GPU) or
`llamafactory-cli api` (CPU), and the deploy step that closes the loop from a finished training
job to a model config that chat and the playground can use.

Like training jobs, this module only changes rows (load requested, unload requested) and wakes
the supervisor; `runtime_runner` starts, probes, stops and reconciles the processes. Everyone
sees what is ready; only the owner and admins see the rest, and only they load, unload, change
or delete.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.config import settings
from app.database import run_then_commit, session_scope
from app.engines import is_local_model
from app.engines.serving import (
    ServeSpec,
    port_free,
    runtime_layout,
    serving_status,
    validate_serve_spec,
)
from app.engines.trainer_log import list_artifacts
from app.exceptions import AppError, Conflict, FieldError, InvalidFields, NotFound, PermissionDenied
from app.models import ModelConfig, ModelRuntime, TrainingJob, User
from app.schemas.model_config import OwnerRef
from app.schemas.model_runtime import (
    DeployRequest,
    DeployResult,
    RuntimeCreate,
    RuntimePublic,
    RuntimeUpdate,
    ServingEngineInfo,
)
from app.schemas.training import JobLogs
from app.services import training_service
from app.services.uploads import remove_tree, when_settled
from app.utils.crypto import encrypt_secret

UNLOAD_WAIT_S = 15.0
ACTIVE = ("loading", "ready")


class EngineUnavailableError(AppError):
    status_code = 409
    code = "engine_unavailable"
    detail = "The serving engine is not available"


class InvalidState(Conflict):
    code = "invalid_state"


def _not_found() -> NotFound:
    return NotFound("Model runtime not found", code="runtime_not_found")


# --------------------------------------------------------------------------------- reading


def _visible(actor: User) -> ColumnElement[bool]:
    if actor.is_admin:
        return true()
    return or_(ModelRuntime.owner_id == actor.id, ModelRuntime.status == "ready")


def _may_manage(actor: User, row: ModelRuntime) -> bool:
    return actor.is_admin or row.owner_id == actor.id


def _get(db: Session, actor: User, runtime_id: int, *, lock: bool = False) -> ModelRuntime:
    query = select(ModelRuntime).where(ModelRuntime.id == runtime_id, _visible(actor))
    if lock:
        query = query.with_for_update(of=ModelRuntime)
    row = db.scalars(query).first()
    if row is None:
        raise _not_found()
    return row


def _get_managed(db: Session, actor: User, runtime_id: int, *, lock: bool = False) -> ModelRuntime:
    row = _get(db, actor, runtime_id, lock=lock)
    if not _may_manage(actor, row):
        raise PermissionDenied("Only its owner or an admin may do this", code="forbidden")
    return row


def endpoint_of(row: ModelRuntime) -> str | None:
    return f"http://127.0.0.1:{row.port}/v1" if row.port is not None else None


def to_public(row: ModelRuntime, actor: User) -> RuntimePublic:
    uptime = None
    if row.status == "ready" and row.ready_at is not None:
        uptime = max(0, int((datetime.now(UTC) - row.ready_at).total_seconds()))
    return RuntimePublic(
        id=row.id,
        name=row.name,
        description=row.description,
        owner=OwnerRef(id=row.owner.id, nickname=row.owner.nickname),
        can_manage=_may_manage(actor, row),
        source_kind=row.source_kind,
        source=row.source,
        job_id=row.job_id,
        base_model=row.base_model,
        adapter_path=row.adapter_path,
        template=row.template,
        engine=row.engine,
        backend=row.backend,
        engine_args=row.engine_args,
        requested_port=row.requested_port,
        status=row.status,
        unload_requested=row.unload_requested,
        port=row.port if row.status in ACTIVE else None,
        endpoint=endpoint_of(row) if row.status in ACTIVE else None,
        reason=row.reason,
        exit_code=row.exit_code,
        model_config_id=row.model_config_id,
        uptime_s=uptime,
        load_requested_at=row.load_requested_at,
        started_at=row.started_at,
        ready_at=row.ready_at,
        stopped_at=row.stopped_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def list_runtimes(db: Session, actor: User, *, status: str | None = None) -> list[RuntimePublic]:
    """Own runtimes and every ready one (admins: all), newest first."""
    query = select(ModelRuntime).where(_visible(actor))
    if status:
        query = query.where(ModelRuntime.status == status)
    rows = db.scalars(query.order_by(ModelRuntime.id.desc())).all()
    return [to_public(row, actor) for row in rows]


def get_runtime(db: Session, actor: User, runtime_id: int) -> RuntimePublic:
    """One visible runtime."""
    return to_public(_get(db, actor, runtime_id), actor)


def engines() -> list[ServingEngineInfo]:
    """Which serving engines can run on this host, and what is missing for the others."""
    out = []
    for engine in ("llamafactory", "vllm"):
        status = serving_status(engine, vllm_bin=settings.VLLM_BIN)
        out.append(
            ServingEngineInfo(
                engine=engine,
                available=status.available,
                missing=status.missing,
                install_hint=status.install_hint,
            )
        )
    return out


# -------------------------------------------------------------------------------- changing


def spec_of(row: ModelRuntime, *, port: int = 0, api_key: str = "") -> ServeSpec:
    return ServeSpec(
        name=row.name,
        model=row.base_model,
        adapter=Path(row.adapter_path) if row.adapter_path else None,
        template=row.template,
        engine=row.engine,
        backend=row.backend,
        engine_args=dict(row.engine_args),
        port=port,
        api_key=api_key,
    )


def _check_spec(row: ModelRuntime) -> None:
    """422 for a spec no host could serve. Whether this host has the engine (vLLM, a GPU) is
    asked at load time (409 engine_unavailable), so a record can be prepared anywhere."""
    problems = validate_serve_spec(spec_of(row, port=8000, api_key="x"), gpu_available=True)
    if problems:
        names = {"model": "source", "adapter": "source"}
        raise InvalidFields(
            [
                FieldError(("body", *names.get(p.field, p.field).split(".")), p.message)
                for p in problems
            ],
            code="invalid_runtime",
        )


def _job_source(db: Session, actor: User, data: RuntimeCreate) -> dict[str, Any]:
    """base_model / adapter_path / template of a job's artifact."""
    if data.job_id is None:
        raise InvalidFields([FieldError(("body", "job_id"), "choose the training job to serve")])
    job = db.scalars(
        select(TrainingJob).where(
            TrainingJob.id == data.job_id,
            true() if actor.is_admin else TrainingJob.owner_id == actor.id,
        )
    ).first()
    if job is None:
        raise InvalidFields([FieldError(("body", "job_id"), "training job not found")])
    if job.status != "succeeded":
        raise InvalidFields([FieldError(("body", "job_id"), "the job has not succeeded")])
    layout = training_service.layout_of(job.id)
    found = list_artifacts(layout.output_dir, layout.export_dir)
    artifact = data.artifact or (
        "merged" if job.kind == "export" else ("adapter" if found.has_adapter else "model")
    )
    error = FieldError(("body", "artifact"), f"job {job.id} has no {artifact} to serve")
    if artifact == "adapter":
        if not found.has_adapter:
            raise InvalidFields([error])
        return {
            "base_model": job.base_model,
            "adapter_path": str(layout.output_dir),
            "template": job.template,
            "source": f"job {job.id}: LoRA adapter on {job.base_model}",
        }
    if artifact == "merged":
        if found.merged_dir is None:
            raise InvalidFields([error])
        return {
            "base_model": str(found.merged_dir),
            "adapter_path": None,
            "template": job.template,
            "source": f"job {job.id}: merged model",
        }
    if not found.has_model:
        raise InvalidFields([error])
    return {
        "base_model": str(layout.output_dir),
        "adapter_path": None,
        "template": job.template,
        "source": f"job {job.id}: fine-tuned model",
    }


def _build(db: Session, actor: User, data: RuntimeCreate) -> ModelRuntime:
    if data.source_kind == "job":
        source = _job_source(db, actor, data)
    else:
        model = (data.source or "").strip()
        if not model:
            raise InvalidFields([FieldError(("body", "source"), "give a model path or hub id")])
        if data.source_kind == "path" and not is_local_model(model):
            raise InvalidFields(
                [FieldError(("body", "source"), "a local model is given by its absolute path")]
            )
        if data.source_kind == "hub" and is_local_model(model):
            raise InvalidFields([FieldError(("body", "source"), "not a hub id")])
        source = {"base_model": model, "adapter_path": None, "template": "default", "source": model}
    row = ModelRuntime(
        owner_id=actor.id,
        name=data.name,
        description=data.description,
        source_kind=data.source_kind,
        source=source["source"],
        job_id=data.job_id if data.source_kind == "job" else None,
        base_model=source["base_model"],
        adapter_path=source["adapter_path"],
        template=data.template or source["template"],
        engine=data.engine,
        backend=data.backend,
        engine_args=dict(data.engine_args),
        requested_port=data.port,
        status="stopped",
    )
    _check_spec(row)
    return row


def _insert(db: Session, row: ModelRuntime) -> None:
    taken = db.scalar(select(ModelRuntime.id).where(ModelRuntime.name == row.name))
    if taken is not None:
        raise Conflict(f"A runtime named {row.name!r} exists already", code="name_taken")
    try:
        with db.begin_nested():
            db.add(row)
            db.flush()
    except IntegrityError as exc:  # a concurrent create took the name
        raise Conflict(f"A runtime named {row.name!r} exists already", code="name_taken") from exc


def create_runtime(db: Session, actor: User, data: RuntimeCreate) -> RuntimePublic:
    """Register a model to serve (422 when this host cannot serve it); `load` starts it."""
    row = _build(db, actor, data)
    _insert(db, row)
    if data.load:
        _request_load(db, row)
    return to_public(row, actor)


def update_runtime(db: Session, actor: User, runtime_id: int, data: RuntimeUpdate) -> RuntimePublic:
    """Change the description, or the serving settings of a runtime that is not loaded."""
    row = _get_managed(db, actor, runtime_id, lock=True)
    sent = data.model_dump(exclude_unset=True)
    serving = {key for key in sent if key != "description"}
    if serving and row.status in ACTIVE:
        raise InvalidState("Unload the model before changing how it is served")
    if sent.get("description") is not None:
        row.description = sent["description"]
    if sent.get("template") is not None:
        row.template = sent["template"]
    if sent.get("engine_args") is not None:
        row.engine_args = dict(sent["engine_args"])
    if "port" in sent:
        row.requested_port = sent["port"]
    _check_spec(row)
    db.flush()
    return to_public(row, actor)


def _wake_after_commit(db: Session) -> None:
    from app.services.training_runner import supervisor

    when_settled(db, on_commit=supervisor.wake)


def _require_engine(row: ModelRuntime) -> None:
    status = serving_status(row.engine, backend=row.backend, vllm_bin=settings.VLLM_BIN)
    if not status.available:
        hint = f"; {status.install_hint}" if status.install_hint else ""
        raise EngineUnavailableError(
            f"The {status.engine} engine is not available: {status.missing}{hint}"
        )


def _request_load(db: Session, row: ModelRuntime) -> None:
    _require_engine(row)
    if row.requested_port is not None and not port_free(row.requested_port):
        raise Conflict(f"Port {row.requested_port} is in use", code="port_in_use")
    row.status = "loading"
    row.unload_requested = False
    row.reason = None
    row.exit_code = None
    row.pid = None
    row.proc_start_time = None
    row.port = None
    row.ready_at = None
    row.stopped_at = None
    row.load_requested_at = datetime.now(UTC)
    row.api_key_encrypted = encrypt_secret(secrets.token_urlsafe(32))
    db.flush()
    _wake_after_commit(db)


def load_runtime(db: Session, actor: User, runtime_id: int) -> RuntimePublic:
    """Start serving: status loading, then ready once /v1/models answers (or failed)."""
    row = _get_managed(db, actor, runtime_id, lock=True)
    if row.status in ACTIVE:
        raise InvalidState(f"The model is already {row.status}")
    _check_spec(row)
    _request_load(db, row)
    return to_public(row, actor)


def _request_unload(db: Session, actor: User, runtime_id: int) -> bool:
    row = _get_managed(db, actor, runtime_id, lock=True)
    if row.status not in ACTIVE:
        raise InvalidState(f"The model is {row.status}, not loading or ready")
    row.unload_requested = True
    db.flush()
    _wake_after_commit(db)
    return True


def _read(actor: User, runtime_id: int) -> RuntimePublic:
    with session_scope() as db:
        return get_runtime(db, actor, runtime_id)


async def _wait_stopped(actor: User, runtime_id: int) -> RuntimePublic:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + UNLOAD_WAIT_S
    while True:
        current = await run_in_threadpool(_read, actor, runtime_id)
        if current.status not in ACTIVE or loop.time() > deadline:
            return current
        await asyncio.sleep(0.2)


async def unload_runtime(db: Session, actor: User, runtime_id: int) -> RuntimePublic:
    """Stop serving (also while loading): the port is freed and the model config disabled."""
    await run_then_commit(db, _request_unload, db, actor, runtime_id)
    return await _wait_stopped(actor, runtime_id)


def _delete_row(db: Session, actor: User, runtime_id: int) -> None:
    row = _get_managed(db, actor, runtime_id, lock=True)
    if row.status in ACTIVE:
        raise InvalidState("The model is still loaded")
    if row.model_config_id is not None:
        config = db.get(ModelConfig, row.model_config_id)
        if config is not None:
            db.delete(config)
    folder = runtime_layout(row.id, settings.SERVING_DIR).root
    db.delete(row)
    db.flush()
    when_settled(db, on_commit=lambda: remove_tree(folder))


def _is_active(actor: User, runtime_id: int) -> bool:
    with session_scope() as db:
        row = _get_managed(db, actor, runtime_id)
        return row.status in ACTIVE


async def delete_runtime(db: Session, actor: User, runtime_id: int) -> None:
    """Delete a runtime (unloading it first) with its model config and folder."""
    if await run_in_threadpool(_is_active, actor, runtime_id):
        await run_then_commit(db, _request_unload, db, actor, runtime_id)
        current = await _wait_stopped(actor, runtime_id)
        if current.status in ACTIVE:
            raise Conflict("The model did not stop in time; try again", code="unload_timeout")
    await run_then_commit(db, _delete_row, db, actor, runtime_id)


def logs(db: Session, actor: User, runtime_id: int, offset: int | None) -> JobLogs:
    """A slice of the engine's log (managers only: it shows paths and arguments)."""
    row = _get_managed(db, actor, runtime_id)
    return training_service.read_log(runtime_layout(row.id, settings.SERVING_DIR).log, offset)


# --------------------------------------------------------------------------------- deploy


def _free_name(db: Session, wanted: str) -> str:
    name, index = wanted, 2
    while db.scalar(select(ModelRuntime.id).where(ModelRuntime.name == name)) is not None:
        suffix = f"-{index}"
        name = wanted[: 64 - len(suffix)] + suffix
        index += 1
    return name


def _default_engine() -> str:
    vllm = serving_status("vllm", vllm_bin=settings.VLLM_BIN)
    return "vllm" if vllm.available else "llamafactory"


def deploy_job(db: Session, actor: User, job_id: int, data: DeployRequest) -> DeployResult:
    """Serve a succeeded job's model (and its base model beside it) and load both."""
    job = db.scalars(
        select(TrainingJob).where(
            TrainingJob.id == job_id,
            true() if actor.is_admin else TrainingJob.owner_id == actor.id,
        )
    ).first()
    if job is None:
        raise NotFound("Training job not found", code="job_not_found")
    if job.status != "succeeded":
        raise InvalidState("Only a succeeded job can be deployed")
    engine = data.engine or _default_engine()
    name = data.name or _free_name(db, f"job-{job.id}")
    runtime = _build(
        db,
        actor,
        RuntimeCreate(name=name, source_kind="job", job_id=job.id, engine=engine),
    )
    _insert(db, runtime)
    _request_load(db, runtime)
    base_public = None
    if data.with_base:
        base = db.scalars(
            select(ModelRuntime)
            .where(
                ModelRuntime.base_model == job.base_model,
                ModelRuntime.adapter_path.is_(None),
                ModelRuntime.source_kind != "job",
                _visible(actor),
            )
            .order_by((ModelRuntime.status == "ready").desc(), ModelRuntime.id)
        ).first()
        if base is None:
            base = _build(
                db,
                actor,
                RuntimeCreate(
                    name=_free_name(db, f"{name}-base"[:64]),
                    description=f"Base model of training job {job.id}",
                    source_kind="path" if is_local_model(job.base_model) else "hub",
                    source=job.base_model,
                    template=job.template,
                    engine=engine,
                ),
            )
            _insert(db, base)
        if base.status not in ACTIVE:
            if not _may_manage(actor, base):
                raise PermissionDenied("The base model's runtime is not yours to load")
            _request_load(db, base)
        base_public = to_public(base, actor)
    return DeployResult(runtime=to_public(runtime, actor), base_runtime=base_public)


def before_owner_delete(db: Session, owner_id: int) -> None:
    """Refuse to delete a user whose models are served (the processes would be orphaned)."""
    active = db.scalar(
        select(ModelRuntime.id).where(
            ModelRuntime.owner_id == owner_id, ModelRuntime.status.in_(ACTIVE)
        )
    )
    if active is not None:
        raise Conflict("This user has a loaded model; unload it first", code="runtime_loaded")
    ids = db.scalars(select(ModelRuntime.id).where(ModelRuntime.owner_id == owner_id)).all()
    folders = [runtime_layout(runtime_id, settings.SERVING_DIR).root for runtime_id in ids]

    def remove() -> None:
        for folder in folders:
            remove_tree(folder)

    if folders:
        when_settled(db, on_commit=remove)
