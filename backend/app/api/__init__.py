"""HTTP routers; `api_router` mounts them all under /api."""

from fastapi import APIRouter

from app.api import admin, auth, model_config, system_prompts

api_router = APIRouter(prefix="/api")
api_router.include_router(auth.public_router)
api_router.include_router(auth.account_router)
api_router.include_router(admin.router)
api_router.include_router(model_config.router)
api_router.include_router(system_prompts.router)
