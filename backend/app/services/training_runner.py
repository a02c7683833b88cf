"""The training supervisor: starts queued jobs (FIFO, at most TRAIN_MAX_CONCURRENT at once),
watches the running ones (progress and the metrics series from trainer_log.jsonl, cancel
requests, the end of the process) and finalises them.

It runs in a thread of its own with its own event loop, so reading logs and waiting on processes
never competes with requests. The API only changes rows (queued, cancel requested) and wakes it;
it also polls every second, so a request served by another worker process is seen too. Only one
supervisor per data folder acts (an exclusive lock on DATA_DIR/training-supervisor.lock); the
others wait to take over.

Processes outlive the server (their own session and process group). When a supervisor takes over,
a `running` job whose process is still alive (same pid and start time) is re-attached; one whose
process is gone is finalised from the exit code its runner recorded, or marked failed as
interrupted (resumable from its last checkpoint) when there is none. No job stays running forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update

from app.config import settings
from app.database import session_scope
from app.engines import (
    EngineUnavailable,
    engine_status,
    failure_reason,
    start_export,
    start_train,
    stop,
    write_dataset_info,
)
from app.engines.process import ProcessHandle, ended_code, has_ended, is_alive, read_exit_code
from app.engines.trainer_log import (
    TRAINER_LOG,
    MetricPoint,
    Progress,
    RunMetrics,
    TrainerLogReader,
    last_checkpoint,
    list_artifacts,
)
from app.models import Dataset, TrainingJob, TrainingMetric
from app.services import training_service as jobs
from app.services.dataset_formats import dataset_info_entry
from app.services.dataset_service import dataset_path

logger = logging.getLogger(__name__)

POLL_S = 1.0
HURRY_POLL_S = 0.2  # while a worker waits for something imminent (a model coming up)
LOCK_FILE = "training-supervisor.lock"


class LaunchError(Exception):
    """A queued job cannot start; the message becomes its failure reason."""


@dataclass
class _Run:
    job_id: int
    kind: str
    handle: ProcessHandle
    reader: TrainerLogReader | None
    stopping: asyncio.Task[Any] | None = None
    attached: bool = False


@dataclass
class Supervisor:
    """One per server process (`supervisor`); `start`/`stop` are counted, so several app
    instances in one process (the tests) share it."""

    _users: int = 0
    _guard: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _wake: asyncio.Event | None = None
    _stopping: bool = False
    _lock_fd: int | None = None
    _runs: dict[int, _Run] = field(default_factory=dict)
    _launching: set[int] = field(default_factory=set)
    # Other supervised kinds of process (model runtimes) take their turn after the jobs.
    _workers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _hurry_until: float = 0.0
    # Set while rows are changed by hand (maintenance, tests): no pass acts on them meanwhile.
    held: bool = False
    _watchers: set[asyncio.Task[None]] = field(default_factory=set)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        with self._guard:
            self._users += 1
            if self._thread is not None:
                return
            self._stopping = False
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run_thread, args=(ready,), name="training-supervisor", daemon=True
            )
            self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        with self._guard:
            self._users = max(0, self._users - 1)
            if self._users or self._thread is None:
                return
            thread, self._thread = self._thread, None
            self._stopping = True
        self.wake()
        thread.join(15)

    def wake(self) -> None:
        """Look at the queue and the running jobs now (callable from any thread)."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop just closed
                loop.call_soon_threadsafe(event.set)

    def add_worker(self, tick: Callable[[], Awaitable[None]]) -> None:
        """Run `tick` in every pass of the active supervisor (after the training jobs)."""
        if tick not in self._workers:
            self._workers.append(tick)

    def hurry(self, seconds: float = 1.0) -> None:
        """Pass more often for a while (call from the supervisor's own loop)."""
        if self._loop is not None:
            self._hurry_until = max(self._hurry_until, self._loop.time() + seconds)

    def notify_on_exit(self, handle: ProcessHandle) -> None:
        """Wake the supervisor as soon as a process it started ends, rather than at the next
        pass (call from the supervisor's own loop)."""
        proc = handle._proc
        if proc is None:
            return

        async def watch() -> None:
            with contextlib.suppress(Exception):
                await proc.wait()
            if self._wake is not None:
                self._wake.set()

        task = asyncio.create_task(watch())
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    @property
    def is_leader(self) -> bool:
        return self._lock_fd is not None

    def _run_thread(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self._main(ready))
        finally:
            ready.set()
            self._release_lock()

    async def _main(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        ready.set()
        try:
            while not self._stopping:
                try:
                    if self._lock_fd is None:
                        self._take_lock()
                    if self._lock_fd is not None and not self.held:
                        await self.tick()
                except Exception:
                    logger.exception("training supervisor: a pass failed")
                if self._lock_fd is not None and not self.held:
                    for worker in list(self._workers):
                        try:
                            await worker()
                        except Exception:
                            logger.exception("supervisor: a pass of %r failed", worker)
                loop = asyncio.get_running_loop()
                pause = HURRY_POLL_S if loop.time() < self._hurry_until else POLL_S
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)
                self._wake.clear()
        finally:
            # The processes go on; the next supervisor re-attaches them.
            for run in self._runs.values():
                if run.stopping is not None:
                    with contextlib.suppress(BaseException):
                        await asyncio.wait_for(run.stopping, 12)
            self._runs.clear()
            self._loop = None
            self._wake = None

    def _take_lock(self) -> None:
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(settings.DATA_DIR / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return
        self._lock_fd = fd
        logger.info("training supervisor active (pid %s)", os.getpid())

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    # ----------------------------------------------------------------------- a pass

    async def tick(self) -> None:
        """One pass: follow every running job, then start what the queue allows."""
        with session_scope() as db:
            running = {
                row.id: (row.kind, row.pid, row.proc_start_time, row.cancel_requested)
                for row in db.execute(
                    select(
                        TrainingJob.id,
                        TrainingJob.kind,
                        TrainingJob.pid,
                        TrainingJob.proc_start_time,
                        TrainingJob.cancel_requested,
                    ).where(TrainingJob.status == "running")
                ).all()
            }
        # Runs whose row is gone (deleted) or was changed behind our back: stop them.
        for job_id in [j for j in self._runs if j not in running]:
            run = self._runs.pop(job_id)
            if run.stopping is None:
                logger.warning("training job %s vanished while running; stopping it", job_id)
                run.stopping = asyncio.create_task(stop(run.handle))
        for job_id, (kind, pid, start_time, cancel) in running.items():
            known = self._runs.get(job_id)
            if known is None:
                if pid is None or start_time is None:
                    if job_id not in self._launching:
                        self._finalize(job_id, None, interrupted=True)
                    continue
                known = self._reattach(job_id, kind, pid, start_time)
                if known is None:
                    continue
            run = known
            if cancel and run.stopping is None:
                run.stopping = asyncio.create_task(stop(run.handle))
            self._ingest(run)
            if has_ended(run.handle):
                self._ingest(run)
                self._runs.pop(job_id, None)
                self._finalize(job_id, ended_code(run.handle))
        await self._schedule()

    def _reattach(self, job_id: int, kind: str, pid: int, start_time: int) -> _Run | None:
        layout = jobs.layout_of(job_id)
        log = layout.export_log if kind == "export" else layout.train_log
        handle = ProcessHandle(
            pid=pid,
            start_time=start_time,
            pgid=pid,
            log_path=log,
            exit_path=log.with_name(f"{log.stem}.exit.json"),
        )
        if not is_alive(pid, start_time):
            code = read_exit_code(handle.exit_path)
            self._ingest_file(job_id, kind)
            self._finalize(job_id, code, interrupted=code is None)
            return None
        with session_scope() as db:
            offset = db.scalar(select(TrainingJob.metrics_offset).where(TrainingJob.id == job_id))
        reader = (
            TrainerLogReader(layout.output_dir / TRAINER_LOG, offset=offset or 0)
            if kind == "train"
            else None
        )
        run = _Run(job_id, kind, handle, reader, attached=True)
        self._runs[job_id] = run
        logger.info("training job %s re-attached (pid %s)", job_id, pid)
        return run

    def _ingest_file(self, job_id: int, kind: str) -> None:
        """Read what a finished, not re-attached run logged since the last pass."""
        if kind != "train":
            return
        with session_scope() as db:
            offset = db.scalar(select(TrainingJob.metrics_offset).where(TrainingJob.id == job_id))
        path = jobs.layout_of(job_id).output_dir / TRAINER_LOG
        self._ingest(_Run(job_id, kind, _NO_HANDLE, TrainerLogReader(path, offset=offset or 0)))

    def _ingest(self, run: _Run) -> None:
        """Fold new trainer_log lines into the job's progress and metrics series."""
        if run.reader is None:
            return
        records = run.reader.read_new()
        if not records:
            return
        with session_scope() as db:
            row = db.get(TrainingJob, run.job_id)
            if row is None:
                return
            metrics = RunMetrics(progress=_progress_of(row))
            rollback_from: int | None = None
            last = row.step
            for record in records:
                step = record.get("current_steps")
                if isinstance(step, int) and last is not None and step < last:
                    # A resumed run continues after its checkpoint: the steps the previous
                    # attempt logged past it are replaced (RunMetrics drops them likewise).
                    rollback_from = step if rollback_from is None else min(rollback_from, step)
                if isinstance(step, int):
                    last = step
                metrics.update([record])
            if rollback_from is not None:
                db.execute(
                    delete(TrainingMetric).where(
                        TrainingMetric.job_id == row.id, TrainingMetric.step >= rollback_from
                    )
                )
            _store_points(db, row.id, list(metrics.points.values()))
            progress = metrics.progress
            if progress is not None:
                row.step, row.total_steps = progress.step, progress.total
                row.percentage, row.loss, row.lr = progress.percentage, progress.loss, progress.lr
                row.epoch, row.elapsed_s = progress.epoch, progress.elapsed_s
                row.remaining_s = progress.remaining_s
            row.metrics_offset = run.reader.offset

    # -------------------------------------------------------------------- finish

    def _finalize(self, job_id: int, exit_code: int | None, *, interrupted: bool = False) -> None:
        with session_scope() as db:
            row = db.get(TrainingJob, job_id, with_for_update=True)
            if row is None or row.status != "running":
                return
            layout = jobs.layout_of(job_id)
            row.exit_code = exit_code
            row.finished_at = datetime.now(UTC)
            if row.cancel_requested:
                row.status = "cancelled"
                at = f" at step {row.step}/{row.total_steps}" if row.step is not None else ""
                row.reason = f"cancelled{at}"
            elif interrupted:
                row.status = "failed"
                row.reason = (
                    "interrupted: the process ended without an exit code (the server or the "
                    "machine restarted, or it was killed); resume it from its last checkpoint "
                    "or start it again"
                )
            elif exit_code == 0:
                found = list_artifacts(layout.output_dir, layout.export_dir)
                made = (
                    found.merged_dir is not None
                    if row.kind == "export"
                    else (found.has_adapter or found.has_model)
                )
                if made:
                    row.status, row.reason = "succeeded", None
                else:
                    row.status = "failed"
                    row.reason = "exit code 0, but the run saved no model"
            else:
                log = layout.export_log if row.kind == "export" else layout.train_log
                row.status = "failed"
                row.reason = failure_reason(exit_code, log)
            row.cancel_requested = False
            row.resume_requested = False
            logger.info("training job %s %s (exit code %s)", job_id, row.status, exit_code)

    def _fail_launch(self, job_id: int, reason: str) -> None:
        with session_scope() as db:
            db.execute(
                update(TrainingJob)
                .where(TrainingJob.id == job_id, TrainingJob.status == "running")
                .values(status="failed", reason=reason, finished_at=datetime.now(UTC))
            )

    # ------------------------------------------------------------------- starting

    async def _schedule(self) -> None:
        with session_scope() as db:
            active = db.scalar(
                select(func.count(TrainingJob.id)).where(TrainingJob.status == "running")
            )
            free = settings.TRAIN_MAX_CONCURRENT - (active or 0)
            if free <= 0:
                return
            queued = db.scalars(
                select(TrainingJob.id)
                .where(TrainingJob.status == "queued")
                .order_by(TrainingJob.queued_at, TrainingJob.id)
                .limit(free)
            ).all()
        for job_id in queued:
            await self._launch(job_id)

    async def _launch(self, job_id: int) -> None:
        with session_scope() as db:
            claimed = db.execute(
                update(TrainingJob)
                .where(TrainingJob.id == job_id, TrainingJob.status == "queued")
                .values(
                    status="running",
                    started_at=datetime.now(UTC),
                    attempt=TrainingJob.attempt + 1,
                    pid=None,
                    proc_start_time=None,
                    exit_code=None,
                    reason=None,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return
        self._launching.add(job_id)
        try:
            try:
                handle, kind = await self._start(job_id)
            except LaunchError as exc:
                self._fail_launch(job_id, str(exc))
                return
            except EngineUnavailable as exc:
                status = exc.status
                self._fail_launch(
                    job_id,
                    f"the training engine is not available ({status.missing}); "
                    f"run `{status.install_hint}`",
                )
                return
            except Exception as exc:
                logger.exception("training job %s could not start", job_id)
                self._fail_launch(job_id, f"could not start: {exc}")
                return
            layout = jobs.layout_of(job_id)
            reader = (
                TrainerLogReader(layout.output_dir / TRAINER_LOG, offset=self._offset(job_id))
                if kind == "train"
                else None
            )
            self._runs[job_id] = _Run(job_id, kind, handle, reader)
            self.notify_on_exit(handle)
            with session_scope() as db:
                db.execute(
                    update(TrainingJob)
                    .where(TrainingJob.id == job_id)
                    .values(pid=handle.pid, proc_start_time=handle.start_time)
                )
            logger.info("training job %s started (pid %s)", job_id, handle.pid)
        finally:
            self._launching.discard(job_id)

    @staticmethod
    def _offset(job_id: int) -> int:
        with session_scope() as db:
            return (
                db.scalar(select(TrainingJob.metrics_offset).where(TrainingJob.id == job_id)) or 0
            )

    async def _start(self, job_id: int) -> tuple[ProcessHandle, str]:
        with session_scope() as db:
            row = db.get(TrainingJob, job_id)
            if row is None:
                raise LaunchError("the job was deleted")
            db.expunge(row)
            source_dir = (
                jobs.layout_of(row.source_job_id).output_dir
                if row.source_job_id is not None
                else None
            )
            datasets = {
                d.id: d
                for d in db.scalars(
                    select(Dataset).where(Dataset.id.in_([int(x["id"]) for x in row.datasets]))
                ).all()
            }
            for d in datasets.values():
                db.expunge(d)
        layout = jobs.layout_of(job_id)
        if row.kind == "export":
            if source_dir is None or not list_artifacts(source_dir).has_adapter:
                raise LaunchError("the adapter to merge is gone (its training job was deleted)")
            await asyncio.to_thread(_remove, layout.export_dir)
            handle = await start_export(
                layout,
                base_model=row.base_model,
                adapter_dir=source_dir,
                template=row.template,
                export_dtype=str(row.config.get("export_dtype", "auto")),
                cpu_threads=await asyncio.to_thread(jobs.cpu_threads),
            )
            return handle, "export"

        status = engine_status()
        if not status.available:
            raise EngineUnavailable(status)
        resume_from: Path | None = None
        if row.resume_requested:
            checkpoint = last_checkpoint(layout.output_dir)
            if checkpoint is None:
                raise LaunchError("no checkpoint left to resume from")
            resume_from = checkpoint.path
        else:  # a fresh run: nothing of an earlier attempt may mix in
            await asyncio.to_thread(_remove, layout.output_dir)
            with session_scope() as db:
                jobs.delete_metrics(db, job_id)
                jobs.reset_progress(db, job_id)
        entries: dict[str, dict[str, Any]] = {}
        kinds: dict[str, str] = {}
        layout.data_dir.mkdir(parents=True, exist_ok=True)
        for ref in row.datasets:
            dataset = datasets.get(int(ref["id"]))
            if dataset is None or not dataset.llamafactory:
                raise LaunchError(f"dataset {ref['name']!r} was deleted or is no longer valid")
            source = dataset_path(dataset)
            name = jobs.dataset_entry_name(dataset.id)
            target = layout.data_dir / f"{name}.{dataset.file_format}"
            await asyncio.to_thread(_link_or_copy, source, target)
            entries[name] = dataset_info_entry(dataset.llamafactory, target.name)
            kinds[name] = str(ref.get("kind", "unknown"))
        write_dataset_info(layout.data_dir, entries)
        swan = jobs.swanlab_options(row.config, job_id)
        spec = jobs.build_spec(row, layout, resume_from=resume_from, swanlab=swan)
        problems = jobs.problems_of(spec, status, kinds)
        if problems:
            raise LaunchError(
                "the job cannot run as configured: "
                + "; ".join(f"{p.field}: {p.message}" for p in problems)
            )
        with session_scope() as db:
            db.execute(
                update(TrainingJob)
                .where(TrainingJob.id == job_id)
                .values(
                    swanlab={
                        "enabled": spec.use_swanlab,
                        "project": spec.swanlab_project,
                        "run_name": spec.swanlab_run_name,
                        "mode": spec.swanlab_mode if spec.use_swanlab else None,
                    }
                )
            )
        handle = await start_train(
            spec,
            layout,
            swanlab_api_key=swan.get("api_key"),
            extra_env=swan.get("env") or None,
            cpu_threads=await asyncio.to_thread(jobs.cpu_threads),
        )
        return handle, "train"


_NO_HANDLE = ProcessHandle(pid=0, start_time=0, pgid=0, log_path=Path(), exit_path=Path())


def _progress_of(row: TrainingJob) -> Progress | None:
    if row.step is None:
        return None
    return Progress(
        step=row.step,
        total=row.total_steps or 0,
        loss=row.loss,
        lr=row.lr,
        epoch=row.epoch,
        percentage=row.percentage or 0.0,
        elapsed_s=row.elapsed_s,
        remaining_s=row.remaining_s,
    )


def _store_points(db: Any, job_id: int, points: list[MetricPoint]) -> None:
    """Insert new steps; merge into steps already stored (an eval line after its train line)."""
    if not points:
        return
    existing = {
        m.step: m
        for m in db.scalars(
            select(TrainingMetric).where(
                TrainingMetric.job_id == job_id,
                TrainingMetric.step.in_([p.step for p in points]),
            )
        ).all()
    }
    for point in points:
        old = existing.get(point.step)
        if old is None:
            db.add(
                TrainingMetric(
                    job_id=job_id,
                    step=point.step,
                    loss=point.loss,
                    lr=point.lr,
                    epoch=point.epoch,
                    eval_loss=point.eval_loss,
                )
            )
            continue
        for name in ("loss", "lr", "epoch", "eval_loss"):
            value = getattr(point, name)
            if value is not None:
                setattr(old, name, value)


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link when the file system allows (no copy of a large dataset), else a copy."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


supervisor = Supervisor()
