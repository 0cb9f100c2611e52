"""The outbox sweeper: SQL is the truth, Redis may forget.

Every period it re-publishes jobs whose rows stayed queued too long or whose worker's claim
went stale (a lost message, a killed worker), fails rows past their deadline, expires pending
verifications past their code's lifetime and forgets expired idempotency keys. Every change is
a compare-and-set, so two sweepers running by mistake split the work or repeat a no-op;
duplicate jobs claim nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass
from datetime import datetime, timedelta

import structlog

from shared.clock import utcnow
from shared.db.repository import CheckRepository, VerificationRepository
from shared.db.session import UnitOfWork
from shared.domain import ErrorCode, EventType
from shared.jobs import Job
from shared.services import audit
from shared.settings import Settings

log = structlog.get_logger(__name__)

_BATCH = 1000
# Republishing backs off (doubling) so that a long but healthy backlog is not flooded with copies.
_MAX_REPUBLISH_BACKOFF = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class SweepReport:
    republished_sends: int
    republished_checks: int
    failed_sends: int
    failed_checks: int
    expired: int
    forgotten_idempotency_keys: int = 0
    dropped_resends: int = 0

    @property
    def anything(self) -> bool:
        return any(astuple(self))


def sweep(
    uow_factory: Callable[[], UnitOfWork], settings: Settings, now: datetime | None = None
) -> SweepReport:
    now = now or utcnow()
    with uow_factory() as uow:
        failed_send_ids = uow.verifications.fail_past_deadline(
            now,
            error_code=ErrorCode.PROVIDER_UNAVAILABLE.value,
            error_message="not sent before the send deadline",
        )
        for verification_id in failed_send_ids:
            failed = uow.verifications.get(verification_id)
            assert failed is not None
            audit.record_for(
                uow,
                EventType.VERIFICATION_FAILED,
                failed,
                reason=ErrorCode.PROVIDER_UNAVAILABLE.value,
            )
        failed_checks = len(
            uow.checks.fail_past_deadline(
                now,
                error_code=ErrorCode.PROVIDER_UNAVAILABLE.value,
                error_message="not checked before the check deadline",
            )
        )
        expired = uow.verifications.expire_pending(now)
        dropped_resends = uow.verifications.drop_late_resends(now)
        forgotten = uow.idempotency.delete_expired(now)

        republished_sends = _republish(uow.verifications, Job.send_code, uow, settings, now)
        republished_checks = _republish(uow.checks, Job.check_code, uow, settings, now)
        uow.commit()

    report = SweepReport(
        republished_sends=republished_sends,
        republished_checks=republished_checks,
        failed_sends=len(failed_send_ids),
        failed_checks=failed_checks,
        expired=expired,
        forgotten_idempotency_keys=forgotten,
        dropped_resends=dropped_resends,
    )
    if report.anything:
        log.info("sweep.done", **asdict(report))
    return report


def _republish(
    rows: VerificationRepository | CheckRepository,
    job_for: Callable[[uuid.UUID], Job],
    uow: UnitOfWork,
    settings: Settings,
    now: datetime,
) -> int:
    taken = rows.take_due_for_republish(now, next_look=now + settings.requeue_after, limit=_BATCH)
    for row_id, times_published in taken:
        if times_published > 2:
            rows.set_next_attempt(row_id, now + _backoff(settings, times_published))
        uow.enqueue_after_commit(job_for(row_id))
    return len(taken)


def _backoff(settings: Settings, times_published: int) -> timedelta:
    return min(settings.requeue_after * (1 << max(times_published - 2, 0)), _MAX_REPUBLISH_BACKOFF)
