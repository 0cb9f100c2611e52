"""The Celery app of the workers: thin task wrappers around shared services.

A task takes a row id, runs one use case on the process's event loop, and turns "try again
later" into a Celery retry. The attempt's bookkeeping is already committed by then, so a retry
that never arrives (Redis lost it) is found by the sweeper instead.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from celery import Celery, Task, signals

from shared.bootstrap import Core
from shared.kit import metrics
from shared.kit.attempts import RetryLater
from shared.kit.jobs import (
    CHECK_CODE,
    CLOSE_VERIFICATION,
    DELIVER_WEBHOOK,
    REQUEST_ID,
    RETAIN,
    SEND_CODE,
    SWEEP,
    SWEEP_QUEUE,
    make_celery,
)
from shared.kit.settings import Settings, get_settings
from shared.kit.startup import Misconfigured, Process, ensure_startable
from shared.tenants.service import service_problems
from shared.verify.twilio import TwilioVerifyClient
from workers.wiring import ContextHolder

log = structlog.get_logger(__name__)

_RETENTION_INTERVAL_SECONDS = 3600.0
# Set in the beat process: what it publishes is counted there.
_IN_BEAT = threading.Event()


def create_worker_app(settings: Settings) -> tuple[Celery, ContextHolder]:
    app = make_celery(settings, main="twostep.worker")
    _schedule_sweeps(app, settings)
    holder = ContextHolder(settings, app)
    _register_tasks(app, holder)
    _connect_lifecycle(app, settings, holder)
    return app, holder


def _schedule_sweeps(app: Celery, settings: Settings) -> None:
    app.conf.beat_scheduler = "celery.beat:Scheduler"
    app.conf.beat_schedule = {
        "sweep": {
            "task": SWEEP,
            "schedule": settings.sweep_interval_seconds,
            # A sweep nobody ran in time is superseded by the next one.
            "options": {"queue": SWEEP_QUEUE, "expires": settings.sweep_interval_seconds},
        },
        "retention": {
            "task": RETAIN,
            "schedule": _RETENTION_INTERVAL_SECONDS,
            "options": {"queue": SWEEP_QUEUE, "expires": _RETENTION_INTERVAL_SECONDS},
        },
    }


def _register_tasks(app: Celery, holder: ContextHolder) -> None:
    @app.task(name=SEND_CODE, bind=True, max_retries=None, shared=False)
    def send_code(self: Task[Any, Any], verification_id: str) -> str:
        row_id = uuid.UUID(verification_id)
        return _run_or_retry(self, holder, lambda core: core.code_jobs.send_code(row_id))

    @app.task(name=CHECK_CODE, bind=True, max_retries=None, shared=False)
    def check_code(self: Task[Any, Any], check_id: str) -> str:
        row_id = uuid.UUID(check_id)
        return _run_or_retry(self, holder, lambda core: core.code_jobs.check_code(row_id))

    @app.task(name=CLOSE_VERIFICATION, bind=True, max_retries=None, shared=False)
    def close_verification(self: Task[Any, Any], verification_id: str) -> str:
        row_id, attempt = uuid.UUID(verification_id), self.request.retries
        return _run_or_retry(
            self, holder, lambda core: core.code_jobs.close_verification(row_id, attempt)
        )

    @app.task(name=DELIVER_WEBHOOK, bind=True, shared=False)
    def deliver_webhook(self: Task[Any, Any], delivery_id: str) -> str:
        # Retries are the row's: the sweeper publishes it again when its next attempt is due.
        row_id = uuid.UUID(delivery_id)
        holder.get().run(lambda core: core.webhook_sender.attempt(row_id), _request_id_of(self))
        return "done"

    @app.task(name=SWEEP, shared=False)
    def sweep() -> str:
        holder.get().run(lambda core: core.sweep())
        return "done"

    @app.task(name=RETAIN, shared=False)
    def retain() -> str:
        holder.get().run(lambda core: core.retention.run())
        return "done"


def _run_or_retry(
    task: Task[Any, Any],
    holder: ContextHolder,
    job: Callable[[Core], Awaitable[RetryLater | None]],
) -> str:
    """Run the job; "try again later" becomes a Celery retry after its countdown."""
    outcome = holder.get().run(job, _request_id_of(task))
    if outcome is not None:
        raise task.retry(countdown=outcome.countdown)
    return "done"


def _connect_lifecycle(app: Celery, settings: Settings, holder: ContextHolder) -> None:
    """Refuse to start misconfigured (also when started as ``celery -A workers.app``), open
    connections before the first job, close them at shutdown."""

    # Celery's signals reach every app of the process: each handler minds its own app's.
    @signals.worker_init.connect(weak=False)
    def _refuse_misconfigured_worker(sender: Any = None, **_kwargs: object) -> None:
        if getattr(sender, "app", None) is app:
            _exit_if_misconfigured(settings, "worker")

    @signals.beat_init.connect(weak=False)
    def _refuse_misconfigured_beat(sender: Any = None, **_kwargs: object) -> None:
        if getattr(sender, "app", None) is app:
            _exit_if_misconfigured(settings, "beat")

    @signals.worker_ready.connect(weak=False)
    def _build(sender: Any = None, **_kwargs: object) -> None:
        # Now rather than in the first job: connections open before the first burst.
        if getattr(sender, "app", None) is app:
            holder.node = str(getattr(sender, "hostname", None) or holder.node)
            holder.get()

    @signals.after_task_publish.connect(weak=False)
    def _count_beats(sender: str | None = None, **_kwargs: object) -> None:
        if sender in (SWEEP, RETAIN) and _IN_BEAT.is_set():
            metrics.BEAT_SENT.labels(job=sender).inc()

    @signals.beat_init.connect(weak=False)
    def _in_beat(sender: Any = None, **_kwargs: object) -> None:
        if getattr(sender, "app", None) is app:
            _IN_BEAT.set()

    @signals.worker_shutdown.connect(weak=False)
    def _close(**_kwargs: object) -> None:
        holder.close()  # a holder that built nothing closes nothing


def _request_id_of(task: Task[Any, Any]) -> str | None:
    """The id of the API request that caused this job, from its headers (sweeper: none)."""
    request_id = task.request.get(REQUEST_ID)
    return str(request_id) if request_id else None


def _exit_if_misconfigured(settings: Settings, process: Process) -> None:
    try:
        ensure_startable(settings, process)
        if process == "worker":
            problems = asyncio.run(_default_service_problems(settings))
            if problems:
                raise Misconfigured(problems)
    except Misconfigured as exc:
        # SystemExit, not an exception: Celery logs and swallows a signal handler's exceptions.
        log.error(f"{process}.misconfigured", problems=exc.problems)
        raise SystemExit(str(exc)) from exc


async def _default_service_problems(settings: Settings) -> list[str]:
    client = TwilioVerifyClient(settings, max_connections=1)
    try:
        return await service_problems(client, client.default_service)
    finally:
        await client.close()


@signals.setup_logging.connect(weak=False)
def _keep_our_logging(**_kwargs: object) -> None:
    """Celery configures logging unless someone answers this signal; we did it already."""


app, context_holder = create_worker_app(get_settings())
