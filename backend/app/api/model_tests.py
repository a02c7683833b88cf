"""Images for vision models, and saved model comparisons with their DPO / SFT export."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import FileResponse

from app.api.chat_export import attachment
from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.api.routing import CommittingRoute, multipart_body
from app.schemas.common import Page
from app.schemas.model_test import (
    EXPORT_IDS_MAX,
    ImagePublic,
    ModelTestCreate,
    ModelTestExportFormat,
    ModelTestPublic,
    ModelTestUpdate,
)
from app.services import image_service
from app.services import model_test_service as service
from app.services.chat_export import ExportFile

router = APIRouter(
    route_class=CommittingRoute,
    prefix="/model",
    tags=["model-tests"],
    dependencies=[Depends(get_current_user)],
)

# The body is read by the service as a stream (see services/uploads.py).
_UPLOAD_BODY = multipart_body()


# --------------------------------------------------------------------------------- images


@router.post(
    "/upload-image",
    response_model=ImagePublic,
    status_code=status.HTTP_201_CREATED,
    openapi_extra=_UPLOAD_BODY,
)
async def upload_image(request: Request, user: CurrentUser, db: SessionDep) -> ImagePublic:
    """Upload a PNG, JPEG, WebP or GIF image (multipart field `file`, checked by content)."""
    return await image_service.upload_image(
        db,
        user,
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
        chunks=request.stream(),
    )


@router.get(
    "/images/{image_id}",
    response_class=FileResponse,
    responses={200: {"content": {"image/*": {}}}},
)
def get_image(image_id: str, user: CurrentUser, db: SessionDep) -> FileResponse:
    """The image file (owner only)."""
    image = image_service.image_file(db, user, image_id)
    return FileResponse(
        image.path,
        media_type=image.mime_type,
        filename=image.download_name,
        content_disposition_type="inline",
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, max-age=86400"},
    )


@router.delete("/images/{image_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_image(image_id: str, user: CurrentUser, db: SessionDep) -> Response:
    """Delete an own image."""
    image_service.delete_image(db, user, image_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---------------------------------------------------------------------------- model tests


@router.post("/tests", response_model=ModelTestPublic, status_code=status.HTTP_201_CREATED)
def create_test(data: ModelTestCreate, user: CurrentUser, db: SessionDep) -> ModelTestPublic:
    """Save a comparison: prompt, images, each model's answer, metrics, ratings and winner."""
    return service.create_test(db, user, data)


@router.get("/tests", response_model=Page[ModelTestPublic])
def list_tests(
    user: CurrentUser,
    db: SessionDep,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[ModelTestPublic]:
    """The caller's saved comparisons, newest first."""
    return service.list_tests(db, user, page=page, size=size)


# Before /tests/{test_id}: "export" is not an id.
@router.get(
    "/tests/export",
    response_class=Response,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def export_tests(
    user: CurrentUser,
    db: SessionDep,
    format_: Annotated[ModelTestExportFormat, Query(alias="format")],
    ids: Annotated[list[int] | None, Query(max_length=EXPORT_IDS_MAX)] = None,
) -> Response:
    """Own comparisons (all, or `ids`) as a JSONL training set: dpo pairs or sft rows."""
    filename, content = service.export_tests(db, user, format_, ids)
    return attachment(ExportFile(filename, "application/x-ndjson", content))


@router.get("/tests/{test_id}", response_model=ModelTestPublic)
def get_test(test_id: int, user: CurrentUser, db: SessionDep) -> ModelTestPublic:
    """One own saved comparison."""
    return service.get_test(db, user, test_id)


@router.patch("/tests/{test_id}", response_model=ModelTestPublic)
def update_test(
    test_id: int, data: ModelTestUpdate, user: CurrentUser, db: SessionDep
) -> ModelTestPublic:
    """Rate the answers, pick or clear the winner, change the title or notes."""
    return service.update_test(db, user, test_id, data)


@router.delete("/tests/{test_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_test(test_id: int, user: CurrentUser, db: SessionDep) -> Response:
    """Delete an own saved comparison."""
    service.delete_test(db, user, test_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
