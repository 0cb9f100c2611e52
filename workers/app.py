"""The Celery app of the workers: thin task wrappers around shared services.

A task takes a row id, runs one use case, and turns "try again later" into a Celery retry. The
attempt's bookkeeping is already committed by then, so a retry that never arrives (Redis lost
it) is found by the sweeper instead.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from celery import Celery, Task, signals

from shared.jobs import CHECK_CODE, SEND_CODE, SWEEP, SWEEP_QUEUE, make_celery
from shared.services import delivery, sweeper
from shared.settings import Settings, get_settings
from workers.wiring import ContextHolder

log = structlog.get_logger(__name__)


def create_worker_app(settings: Settings) -> tuple[Celery, ContextHolder]:
    app = make_celery(settings, main="twostep.worker")
    app.conf.beat_scheduler = "celery.beat:Scheduler"
    app.conf.beat_schedule = {
        "sweep": {
            "task": SWEEP,
            "schedule": settings.sweep_interval_seconds,
            # A sweep nobody ran in time is superseded by the next one.
            "options": {"queue": SWEEP_QUEUE, "expires": settings.sweep_interval_seconds},
        }
    }
    holder = ContextHolder(settings, app)

    @app.task(name=SEND_CODE, bind=True, max_retries=None, shared=False)
    def send_code(self: Task[Any, Any], verification_id: str) -> str:
        outcome = delivery.send_code(holder.get().delivery, uuid.UUID(verification_id))
        if outcome is not None:
            raise self.retry(countdown=outcome.countdown)
        return "done"

    @app.task(name=CHECK_CODE, bind=True, max_retries=None, shared=False)
    def check_code(self: Task[Any, Any], check_id: str) -> str:
        outcome = delivery.check_code(holder.get().delivery, uuid.UUID(check_id))
        if outcome is not None:
            raise self.retry(countdown=outcome.countdown)
        return "done"

    @app.task(name=SWEEP, shared=False)
    def sweep() -> str:
        context = holder.get()
        sweeper.sweep(context.uow_factory, context.settings)
        return "done"

    @signals.worker_shutdown.connect(weak=False)
    def _close(**_kwargs: object) -> None:
        holder.close()

    return app, holder


@signals.setup_logging.connect(weak=False)
def _keep_our_logging(**_kwargs: object) -> None:
    """Celery configures logging unless someone answers this signal; we did it already."""


app, context_holder = create_worker_app(get_settings())
