"""Builds the FastAPI application: middleware, error handlers, routers and start-up work."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from app import __version__
from app.api import api_router
from app.api import health as health_api
from app.config import settings
from app.database import engine, session_scope
from app.exceptions import install_error_handlers
from app.logging_setup import configure_logging
from app.middleware import BodyLimitMiddleware
from app.migrations import upgrade_head
from app.request_context import REQUEST_ID_HEADER, RequestIdMiddleware
from app.services import (
    auth_service,
    dataset_service,
    image_service,
    llm_pool,
    model_config_service,
    prompt_service,
    runtime_runner,  # noqa: F401  (registers the runtime worker)
    uploads,
)
from app.services.training_runner import supervisor as training_supervisor
from app.spa import mount_spa

logger = logging.getLogger(__name__)

# Upload routes, checked against their own size limits instead of MAX_JSON_BODY_BYTES.
UPLOAD_PATHS = (r"/api/model/upload-image", r"/api/training/datasets/upload")


def startup() -> None:
    """Everything the server does before taking requests (blocking; run in a thread)."""
    settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
    _ = settings.secret_key  # generate and store the key now, not on the first login
    if settings.MIGRATE_ON_START:
        upgrade_head(engine)
    with session_scope() as db:
        auth_service.ensure_default_admin(db)
        # After the admin: the templates are owned by it. Once per database (app_state marker).
        model_config_service.seed_default_templates(db)
        prompt_service.seed_builtin_prompts(db)
    swept = uploads.sweep_stale_temps([dataset_service.datasets_dir(), image_service.images_dir()])
    if swept:
        logger.info("Removed %d upload temporary file(s) left by an interrupted server", swept)
    limit, window = settings.login_rate
    auth_service.login_failures.configure(limit, window)
    auth_service.reset_requests.configure(limit, window)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    configure_logging(settings.LOG_LEVEL)
    await run_in_threadpool(startup)
    # After the migrations: it reconciles the jobs a previous server left running.
    await run_in_threadpool(training_supervisor.start)
    logger.info("%s %s ready", settings.APP_NAME, __version__)
    yield
    await run_in_threadpool(training_supervisor.stop)
    await llm_pool.pool.aclose()
    engine.dispose()


def create_app() -> FastAPI:
    """The ASGI application."""
    app = FastAPI(
        title=f"{settings.APP_NAME} API",
        version=__version__,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.CORS_ORIGINS,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=[REQUEST_ID_HEADER, "Retry-After", "Content-Disposition"],
    )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.MAX_JSON_BODY_BYTES,
        # Uploads stream to disk under their own limits (IMAGE_MAX_BYTES, ...).
        exempt=UPLOAD_PATHS,
    )
    app.add_middleware(RequestIdMiddleware)
    app.include_router(health_api.router)
    app.include_router(api_router)
    # Last: the SPA's catch-all route must not shadow the API.
    if not mount_spa(app, settings.FRONTEND_DIST):
        logger.info("No built SPA at %s; serving the API only", settings.FRONTEND_DIST)
    return app
