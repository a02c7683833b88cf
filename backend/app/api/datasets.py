"""Training datasets: upload, import from chats and model tests, list, preview, download."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import FileResponse

from app.api.chat_export import content_disposition
from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute, multipart_body
from app.schemas.common import Page
from app.schemas.dataset import (
    PREVIEW_LIMIT_MAX,
    DatasetDetail,
    DatasetPreview,
    DatasetPublic,
    DatasetScope,
    DatasetStatus,
    DatasetUpdate,
    DetectedFormat,
    FromChatRequest,
    FromTestsRequest,
)
from app.services import dataset_service as service

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/training/datasets",
    tags=["datasets"],
    dependencies=[Depends(get_current_user)],
)

# The body is read by the service as a stream (see services/uploads.py).
_UPLOAD_BODY = multipart_body(
    name={"type": "string", "maxLength": 100},
    description={"type": "string", "maxLength": 2000},
    is_shared={"type": "boolean"},
)


@router.post(
    "/upload",
    response_model=DatasetDetail,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_dataset(request: Request, user: CurrentUser, db: SessionDep) -> DatasetDetail:
    """Upload a .json/.jsonl/.csv/.txt file (multipart field `file`); answers once validated."""
    return await service.upload_dataset(
        db,
        user,
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
        chunks=request.stream(),
    )


@router.post("/from-chat", response_model=DatasetDetail, status_code=status.HTTP_201_CREATED)
def from_chat(data: FromChatRequest, user: CurrentUser, db: SessionDep) -> DatasetDetail:
    """Make a ShareGPT dataset from own chat sessions."""
    return service.create_from_chat(db, user, data)


@router.post("/from-tests", response_model=DatasetDetail, status_code=status.HTTP_201_CREATED)
def from_tests(data: FromTestsRequest, user: CurrentUser, db: SessionDep) -> DatasetDetail:
    """Make a preference (dpo) or SFT dataset from own saved model comparisons."""
    return service.create_from_tests(db, user, data)


@router.get("/", response_model=Page[DatasetPublic])
def list_datasets(
    user: CurrentUser,
    db: SessionDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
    scope: DatasetScope = "all",
    q: Annotated[str | None, Query(max_length=100)] = None,
    status_: Annotated[DatasetStatus | None, Query(alias="status")] = None,
    detected_format: DetectedFormat | None = None,
) -> Page[DatasetPublic]:
    """Own and shared datasets (admins: all), last changed first; filterable."""
    return service.list_datasets(
        db,
        user,
        page=page,
        size=size,
        scope=scope,
        q=q,
        status=status_,
        detected_format=detected_format,
    )


@router.get("/{dataset_id}", response_model=DatasetDetail)
def get_dataset(dataset_id: int, user: CurrentUser, db: SessionDep) -> DatasetDetail:
    """One visible dataset with its validation report and statistics."""
    return service.get_dataset(db, user, dataset_id)


@router.get("/{dataset_id}/preview", response_model=DatasetPreview)
def preview_dataset(
    dataset_id: int,
    user: CurrentUser,
    db: SessionDep,
    offset: Annotated[int, Query(ge=0, le=100_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=PREVIEW_LIMIT_MAX)] = 20,
) -> DatasetPreview:
    """A page of records of a visible dataset, in file order, with read errors."""
    return service.preview_dataset(db, user, dataset_id, offset=offset, limit=limit)


@router.get(
    "/{dataset_id}/download",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_dataset(dataset_id: int, user: CurrentUser, db: SessionDep) -> FileResponse:
    """The file of a visible dataset, as uploaded."""
    file = service.dataset_file(db, user, dataset_id)
    return FileResponse(
        file.path,
        media_type=file.media_type,
        headers={
            "Content-Disposition": content_disposition(file.download_name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-cache",
        },
    )


@router.patch("/{dataset_id}", response_model=DatasetDetail)
def update_dataset(
    dataset_id: int, data: DatasetUpdate, user: CurrentUser, db: SessionDep
) -> DatasetDetail:
    """Rename, describe, share or unshare a dataset (owner or admin)."""
    return service.update_dataset(db, user, dataset_id, data)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset_id: int, user: CurrentUser, db: SessionDep) -> Response:
    """Delete a dataset (owner or admin); 409 while a running training job uses it."""
    service.delete_dataset(db, user, dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
