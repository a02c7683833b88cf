"""Training jobs: LLaMA-Factory fine-tuning runs and adapter merges, their progress, metrics,
logs and artifacts. Mounted after /training/datasets and /training/swanlab (its `/{job_id}`
would otherwise swallow them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import StreamingResponse

from app.api.chat_export import content_disposition
from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute
from app.api.sse import SSEResponse
from app.database import run_then_commit
from app.schemas.common import Page
from app.schemas.model_runtime import DeployRequest, DeployResult
from app.schemas.training import (
    Artifact,
    EngineInfo,
    ExportRequest,
    JobKind,
    JobLogs,
    JobMetrics,
    JobScope,
    JobStatus,
    TrainingJobCreate,
    TrainingJobDetail,
    TrainingJobPublic,
    TrainingJobUpdate,
)
from app.services import runtime_service
from app.services import training_service as service

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/training",
    tags=["training"],
    dependencies=[Depends(get_current_user)],
)

OFFSET_MAX = 2**62


@router.get("/engine", response_model=EngineInfo)
def engine() -> EngineInfo:
    """Whether this server can train: engine version, GPUs, quantization, chat templates."""
    return service.engine_info()


@router.get("", response_model=Page[TrainingJobPublic])
def list_jobs(
    user: CurrentUser,
    db: SessionDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
    scope: JobScope = "all",
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    kind: JobKind | None = None,
    q: Annotated[str | None, Query(max_length=100)] = None,
) -> Page[TrainingJobPublic]:
    """Own jobs (admins: all), newest first; filterable by status, kind and name."""
    return service.list_jobs(
        db, user, page=page, size=size, scope=scope, status=status_, kind=kind, q=q
    )


@router.post("", response_model=TrainingJobDetail, status_code=status.HTTP_201_CREATED)
def create_job(data: TrainingJobCreate, user: CurrentUser, db: SessionDep) -> TrainingJobDetail:
    """Create a training job (422 with field errors when it cannot run here); `start` queues it."""
    return service.create_job(db, user, data)


@router.get("/{job_id}", response_model=TrainingJobDetail)
def get_job(job_id: int, user: CurrentUser, db: SessionDep) -> TrainingJobDetail:
    """One job with its progress, artifacts and exports."""
    return service.get_job(db, user, job_id)


@router.patch("/{job_id}", response_model=TrainingJobDetail)
def update_job(
    job_id: int, data: TrainingJobUpdate, user: CurrentUser, db: SessionDep
) -> TrainingJobDetail:
    """Rename or describe a job."""
    return service.update_job(db, user, job_id, data)


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_job(job_id: int, user: CurrentUser, db: SessionDep) -> Response:
    """Delete a job and its files (409 while it runs)."""
    service.delete_job(db, user, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{job_id}/start", response_model=TrainingJobDetail)
def start_job(job_id: int, user: CurrentUser, db: SessionDep) -> TrainingJobDetail:
    """Queue the job (FIFO, TRAIN_MAX_CONCURRENT at once); a finished job starts afresh."""
    return service.start_job(db, user, job_id)


@router.post("/{job_id}/cancel", response_model=TrainingJobDetail)
async def cancel_job(job_id: int, user: CurrentUser, db: SessionDep) -> TrainingJobDetail:
    """Cancel a queued or running job; a run is stopped (state saved) within 10 s."""
    return await service.cancel_job(db, user, job_id)


@router.post("/{job_id}/resume", response_model=TrainingJobDetail)
def resume_job(job_id: int, user: CurrentUser, db: SessionDep) -> TrainingJobDetail:
    """Queue a failed or cancelled job to continue from its last checkpoint."""
    return service.resume_job(db, user, job_id)


@router.post(
    "/{job_id}/export", response_model=TrainingJobDetail, status_code=status.HTTP_201_CREATED
)
def export_job(
    job_id: int, user: CurrentUser, db: SessionDep, data: ExportRequest | None = None
) -> TrainingJobDetail:
    """Merge the job's LoRA adapter into its base model, as a new export job."""
    return service.export_job(db, user, job_id, data or ExportRequest())


@router.post("/{job_id}/deploy", response_model=DeployResult, status_code=status.HTTP_201_CREATED)
def deploy_job(
    job_id: int, user: CurrentUser, db: SessionDep, data: DeployRequest | None = None
) -> DeployResult:
    """Serve the job's fine-tuned model (and its base model) and load them for a comparison."""
    return runtime_service.deploy_job(db, user, job_id, data or DeployRequest())


@router.get("/{job_id}/metrics", response_model=JobMetrics)
def job_metrics(
    job_id: int,
    user: CurrentUser,
    db: SessionDep,
    after_step: Annotated[int | None, Query(ge=-1, le=OFFSET_MAX)] = None,
) -> JobMetrics:
    """The progress and the metrics series (loss, lr, epoch, eval loss per logged step)."""
    return service.metrics(db, user, job_id, after_step)


@router.get("/{job_id}/logs", response_model=JobLogs)
def job_logs(
    job_id: int,
    user: CurrentUser,
    db: SessionDep,
    offset: Annotated[int | None, Query(ge=0, le=OFFSET_MAX)] = None,
) -> JobLogs:
    """Log lines from byte `offset` (without it: the last 200 lines)."""
    return service.logs(db, user, job_id, offset)


@router.get("/{job_id}/events", response_class=SSEResponse)
async def job_events(
    job_id: int,
    user: CurrentUser,
    db: SessionDep,
    log_offset: Annotated[int | None, Query(ge=0, le=OFFSET_MAX)] = None,
    after_step: Annotated[int | None, Query(ge=-1, le=OFFSET_MAX)] = None,
) -> SSEResponse:
    """Live job state, new metrics points and new log lines (SSE) until the job ends."""
    await run_then_commit(db, service.check_visible, db, user, job_id)
    return SSEResponse(service.events(user, job_id, log_offset=log_offset, after_step=after_step))


@router.get("/{job_id}/artifacts", response_model=list[Artifact])
def job_artifacts(job_id: int, user: CurrentUser, db: SessionDep) -> list[Artifact]:
    """The adapter, model, merged model and checkpoints the job left."""
    return service.artifacts(db, user, job_id)


@router.get(
    "/{job_id}/artifacts/{name}/download",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/zip": {}}}},
)
def download_artifact(
    job_id: int, name: str, user: CurrentUser, db: SessionDep
) -> StreamingResponse:
    """One artifact as a zip, streamed."""
    item = service.artifact_files(db, user, job_id, name)
    return StreamingResponse(
        service.zip_stream(service.open_artifact(item)),
        media_type="application/zip",
        headers={
            "Content-Disposition": content_disposition(f"job-{job_id}-{name}.zip"),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-cache",
        },
    )
