"""Images for vision models, and saved model comparisons with their DPO / SFT export."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.responses import FileResponse

from app.api.deps import CurrentUser, SessionDep, get_current_user
from app.schemas.model_test import ImagePublic
from app.services import image_service

router = APIRouter(prefix="/model", tags=["model-tests"], dependencies=[Depends(get_current_user)])

# The body is read by the service as a stream (see image_service), so FastAPI does not know its
# shape; this describes it for /docs.
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


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
