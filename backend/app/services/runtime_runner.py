"""The model-runtime part of the supervisor: starts the runtimes asked to load, probes them
until /v1/models answers (ready: their model config is created or enabled), notices when an
engine dies, stops the ones asked to unload (their config is disabled), and reconciles what a
previous server left loading or ready (re-attached when the process still lives, failed when it
is gone). It runs as a worker of `training_runner.supervisor`: same thread, same lock, same pass.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from app.config import settings
from app.database import session_scope
from app.engines import EngineUnavailable
from app.engines.process import ProcessHandle, ended_code, has_ended, is_alive, read_exit_code
from app.engines.serving import (
    pick_free_port,
    port_free,
    probe_ready,
    runtime_layout,
    serving_failure_reason,
    start_server,
    stop_server,
)
from app.models import ModelConfig, ModelRuntime
from app.services import runtime_service
from app.services.training_runner import supervisor
from app.utils.crypto import decrypt_secret

logger = logging.getLogger(__name__)


@dataclass
class _Served:
    runtime_id: int
    handle: ProcessHandle
    port: int
    api_key: str
    started: float  # loop time
    stopping: asyncio.Task[Any] | None = None
    timed_out: bool = False


@dataclass
class RuntimeWorker:
    served: dict[int, _Served] = field(default_factory=dict)

    async def tick(self) -> None:
        with session_scope() as db:
            rows = [
                (r.id, r.status, r.pid, r.proc_start_time, r.port, r.unload_requested,
                 r.api_key_encrypted)
                for r in db.scalars(
                    select(ModelRuntime).where(ModelRuntime.status.in_(("loading", "ready")))
                ).all()
            ]  # fmt: skip
        active = {row[0] for row in rows}
        for runtime_id in [r for r in self.served if r not in active]:
            served = self.served.pop(runtime_id)
            if served.stopping is None:  # deleted or changed behind our back
                served.stopping = asyncio.create_task(stop_server(served.handle))
        for runtime_id, status, pid, start_time, port, unload, key in rows:
            known = self.served.get(runtime_id)
            if known is None:
                if pid is None:
                    if unload:
                        self._finish(runtime_id, "stopped", None, None)
                    elif status == "loading":
                        await self._launch(runtime_id)
                    else:
                        self._finish(runtime_id, "failed", None, "interrupted: no process")
                    continue
                known = self._reattach(runtime_id, pid, start_time, port, key)
                if known is None:
                    continue
            await self._follow(known, status, unload)

    # ------------------------------------------------------------------------ start

    async def _launch(self, runtime_id: int) -> None:
        with session_scope() as db:
            row = db.get(ModelRuntime, runtime_id)
            if row is None or row.status != "loading" or row.api_key_encrypted is None:
                return
            port = row.requested_port or pick_free_port()
            api_key = decrypt_secret(row.api_key_encrypted)
            spec = runtime_service.spec_of(row, port=port, api_key=api_key)
        layout = runtime_layout(runtime_id, settings.SERVING_DIR)
        if not port_free(port):
            self._finish(runtime_id, "failed", None, f"port {port} is in use")
            return
        try:
            handle = await start_server(
                spec,
                layout,
                bin_dir=settings.TRAIN_ENGINE_BIN,
                vllm_bin=settings.VLLM_BIN,
            )
        except EngineUnavailable as exc:
            self._finish(runtime_id, "failed", None, f"engine unavailable: {exc}")
            return
        except Exception as exc:
            logger.exception("runtime %s could not start", runtime_id)
            self._finish(runtime_id, "failed", None, f"could not start: {exc}")
            return
        loop = asyncio.get_running_loop()
        self.served[runtime_id] = _Served(runtime_id, handle, port, api_key, loop.time())
        supervisor.notify_on_exit(handle)
        with session_scope() as db:
            row = db.get(ModelRuntime, runtime_id)
            if row is not None:
                row.pid, row.proc_start_time = handle.pid, handle.start_time
                row.port, row.started_at = port, datetime.now(UTC)
        logger.info("runtime %s starting on port %s (pid %s)", runtime_id, port, handle.pid)

    def _reattach(
        self, runtime_id: int, pid: int, start_time: int | None, port: int | None, key: str | None
    ) -> _Served | None:
        log = runtime_layout(runtime_id, settings.SERVING_DIR).log
        handle = ProcessHandle(
            pid=pid,
            start_time=start_time or 0,
            pgid=pid,
            log_path=log,
            exit_path=log.with_name(f"{log.stem}.exit.json"),
        )
        if start_time is None or port is None or key is None or not is_alive(pid, start_time):
            code = read_exit_code(handle.exit_path)
            reason = (
                "interrupted: the engine ended while the server was down"
                if code is None
                else serving_failure_reason(code, log, port=port)
            )
            self._finish(runtime_id, "failed", code, reason)
            return None
        served = _Served(
            runtime_id, handle, port, decrypt_secret(key), asyncio.get_running_loop().time()
        )
        self.served[runtime_id] = served
        logger.info("runtime %s re-attached (pid %s)", runtime_id, pid)
        return served

    # ----------------------------------------------------------------------- follow

    async def _follow(self, served: _Served, status: str, unload: bool) -> None:
        runtime_id = served.runtime_id
        if unload and served.stopping is None:
            served.stopping = asyncio.create_task(stop_server(served.handle))
        if has_ended(served.handle):
            self.served.pop(runtime_id, None)
            code = ended_code(served.handle)
            log = served.handle.log_path
            if unload:
                self._finish(runtime_id, "stopped", code, None)
            elif served.timed_out:
                limit = int(settings.SERVING_LOAD_TIMEOUT_S)
                self._finish(
                    runtime_id,
                    "failed",
                    code,
                    f"not ready after {limit} s\n"
                    + serving_failure_reason(code, log, port=served.port),
                )
            else:
                when = "while loading" if status == "loading" else "while serving"
                reason = serving_failure_reason(code, log, port=served.port)
                self._finish(runtime_id, "failed", code, f"the engine exited {when}: {reason}")
            return
        if status != "loading" or served.stopping is not None:
            return
        # Probe often while it comes up: readiness is what the user is waiting for.
        supervisor.hurry()
        base_url = f"http://127.0.0.1:{served.port}/v1"
        name = self._name(runtime_id)
        if name is not None and await probe_ready(base_url, served.api_key, name):
            self._ready(runtime_id, served)
        elif asyncio.get_running_loop().time() - served.started > settings.SERVING_LOAD_TIMEOUT_S:
            served.timed_out = True
            served.stopping = asyncio.create_task(stop_server(served.handle))

    @staticmethod
    def _name(runtime_id: int) -> str | None:
        with session_scope() as db:
            return db.scalar(select(ModelRuntime.name).where(ModelRuntime.id == runtime_id))

    def _ready(self, runtime_id: int, served: _Served) -> None:
        with session_scope() as db:
            row = db.get(ModelRuntime, runtime_id, with_for_update=True)
            if row is None or row.status != "loading":
                return
            row.status = "ready"
            row.ready_at = datetime.now(UTC)
            config = db.get(ModelConfig, row.model_config_id) if row.model_config_id else None
            if config is None:
                config = ModelConfig(
                    owner_id=row.owner_id,
                    name=f"{row.name} (ModelTrain)"[:100],
                    provider="vllm",
                    capability_vision=False,
                    capability_reasoning=False,
                )
                db.add(config)
            config.endpoint = f"http://127.0.0.1:{served.port}/v1"
            config.model = row.name
            config.api_key_encrypted = row.api_key_encrypted
            config.status = 1
            config.description = (
                f"Served by ModelTrain runtime #{row.id} ({row.engine}): {row.source}"
            )
            db.flush()
            row.model_config_id = config.id
        logger.info("runtime %s ready on port %s", runtime_id, served.port)

    def _finish(
        self, runtime_id: int, status: str, exit_code: int | None, reason: str | None
    ) -> None:
        with session_scope() as db:
            row = db.get(ModelRuntime, runtime_id, with_for_update=True)
            if row is None or row.status not in ("loading", "ready"):
                return
            row.status = status
            row.exit_code = exit_code
            row.reason = reason
            row.unload_requested = False
            row.stopped_at = datetime.now(UTC)
            row.pid = None
            row.proc_start_time = None
            if row.model_config_id is not None:
                config = db.get(ModelConfig, row.model_config_id)
                if config is not None:
                    config.status = 0
        logger.info("runtime %s %s", runtime_id, status)


worker = RuntimeWorker()
supervisor.add_worker(worker.tick)
