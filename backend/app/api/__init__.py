"""HTTP routers; `api_router` mounts them all under /api."""

from fastapi import APIRouter

from app.api import (
    admin,
    auth,
    chat,
    chat_export,
    dashboard,
    datasets,
    model_config,
    model_runtime,
    model_tests,
    playground,
    swanlab,
    system_prompts,
    training,
)

api_router = APIRouter(prefix="/api")
api_router.include_router(auth.public_router)
api_router.include_router(auth.account_router)
api_router.include_router(admin.router)
api_router.include_router(model_config.router)
api_router.include_router(system_prompts.router)
api_router.include_router(chat_export.router)
api_router.include_router(chat.router)
api_router.include_router(playground.router)
# /api/model/tests and /api/model/upload-image: mounted before the model runtimes' /api/model/{id}.
api_router.include_router(model_tests.router)
api_router.include_router(model_runtime.router)
api_router.include_router(dashboard.router)
# Before the training jobs router: /api/training/datasets stays reachable.
api_router.include_router(datasets.router)
# /training/datasets and /training/swanlab must stay mounted before the jobs router, or its
# /training/{job_id} would swallow them.
api_router.include_router(swanlab.router)
api_router.include_router(training.router)
