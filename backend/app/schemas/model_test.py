"""Requests and responses of uploaded images (`/api/model/upload-image`, `/api/model/images`)
and saved model comparisons (`/api/model/tests`)."""

from __future__ import annotations

from pydantic import BaseModel


class ImagePublic(BaseModel):
    """An uploaded image; `url` serves it to its owner only."""

    id: str
    mime_type: str
    size_bytes: int
    width: int
    height: int
    url: str
