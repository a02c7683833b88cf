"""Images for vision models, and saved model comparisons with their DPO / SFT export."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from app.api.deps import get_current_user

router = APIRouter(prefix="/model", tags=["model-tests"], dependencies=[Depends(get_current_user)])
