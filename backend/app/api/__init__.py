"""HTTP routers; `api_router` mounts them all under /api."""

from fastapi import APIRouter

from app.api import admin, auth

api_router = APIRouter(prefix="/api")
api_router.include_router(auth.public_router)
api_router.include_router(auth.account_router)
api_router.include_router(admin.router)
