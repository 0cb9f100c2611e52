"""The sweeper: SQL is the truth, Redis may forget.

Every period it re-publishes jobs whose rows stayed queued too long or whose worker's claim
went stale (a lost message, a killed worker), fails rows past their deadline, expires pending
verifications past their code's lifetime, deletes the typed codes of the checks it ended and
forgets expired idempotency keys. Every change is
a compare-and-set, so two sweepers running by mistake split the work or repeat a no-op;
duplicate jobs claim nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict, astuple, dataclass
from datetime import datetime, timedelta

import structlog

from shared.audit.domain import EventType
from shared.errors import AttemptError, ErrorCode
from shared.kit import metrics
from shared.kit.clock import Clock
from shared.kit.jobs import Job
from shared.kit.settings import Settings
from shared.unit_of_work import UnitOfWork
from shared.verifications.check_repository import CheckRepository
from shared.verifications.codes import CodeStash
from shared.verifications.events import record_for
from shared.verifications.models import Verification
from shared.verifications.repository import VerificationRepository
from shared.verifications.views import change_of
from shared.webhooks.repository import WebhookDeliveryRepository

log = structlog.get_logger(__name__)

_BATCH = 1000
# Republishing backs off (doubling) so that a long but healthy backlog is not flooded with copies.
_MAX_REPUBLISH_BACKOFF = timedelta(minutes=2)
_NOT_SENT = AttemptError(ErrorCode.PROVIDER_UNAVAILABLE, "not sent before the send deadline")
_NOT_DELIVERED = AttemptError(ErrorCode.PROVIDER_UNAVAILABLE, "not delivered before its deadline")
_NOT_CHECKED = AttemptError(ErrorCode.PROVIDER_UNAVAILABLE, "not checked before the check deadline")


@dataclass(frozen=True, slots=True)
class SweepReport:
    republished_sends: int
    republished_checks: int
    failed_sends: int
    failed_checks: int
    expired: int
    forgotten_idempotency_keys: int = 0
    dropped_resends: int = 0
    republished_deliveries: int = 0
    failed_deliveries: int = 0

    @property
    def anything(self) -> bool:
        return any(astuple(self))


@dataclass(frozen=True)
class Sweeper:
    uow_factory: Callable[[], UnitOfWork]
    settings: Settings
    clock: Clock
    stash: CodeStash

    async def sweep(self, now: datetime | None = None) -> SweepReport:
        now = now or self.clock.now()
        async with self.uow_factory() as uow:
            failed_sends = await self._fail_unsent(uow, now)
            failed_checks = await uow.checks.fail_past_deadline(now, _NOT_CHECKED)
            expired = await uow.verifications.expire_pending(now)
            uow.notify_after_commit(
                *(change_of(row) for row in [*failed_sends, *expired]),
                *(change_of(check) for check in failed_checks),
            )
            failed_deliveries = await uow.webhook_deliveries.fail_past_deadline(now, _NOT_DELIVERED)
            dropped_resends = await uow.verifications.drop_late_resends(now)
            forgotten = await uow.idempotency.delete_expired(now)
            report = SweepReport(
                republished_sends=await self._republish(uow.verifications, Job.send_code, uow, now),
                republished_checks=await self._republish(uow.checks, Job.check_code, uow, now),
                republished_deliveries=await self._republish(
                    uow.webhook_deliveries, Job.deliver_webhook, uow, now
                ),
                failed_deliveries=len(failed_deliveries),
                failed_sends=len(failed_sends),
                failed_checks=len(failed_checks),
                expired=len(expired),
                forgotten_idempotency_keys=forgotten,
                dropped_resends=dropped_resends,
            )
        # A check ended here will never be sent: its code must not wait out its TTL.
        await self.stash.discard(*(check.id for check in failed_checks))
        metrics.SWEEPS.inc()
        metrics.SWEEP_REPUBLISHED.labels(job="send").inc(report.republished_sends)
        metrics.SWEEP_REPUBLISHED.labels(job="check").inc(report.republished_checks)
        metrics.SWEEP_REPUBLISHED.labels(job="webhook").inc(report.republished_deliveries)
        metrics.WEBHOOK_DELIVERIES.labels(outcome="failed").inc(report.failed_deliveries)
        if report.anything:
            log.info("sweep.done", **asdict(report))
        return report

    async def _fail_unsent(self, uow: UnitOfWork, now: datetime) -> list[Verification]:
        failed = await uow.verifications.fail_past_deadline(now, _NOT_SENT)
        for verification in failed:
            await record_for(
                uow,
                EventType.VERIFICATION_FAILED,
                verification,
                reason=ErrorCode.PROVIDER_UNAVAILABLE.value,
            )
        return failed

    async def _republish(
        self,
        rows: VerificationRepository | CheckRepository | WebhookDeliveryRepository,
        job_for: Callable[[uuid.UUID], Job],
        uow: UnitOfWork,
        now: datetime,
    ) -> int:
        requeue_after = self.settings.requeue_after
        taken = await rows.take_due_for_republish(now, next_look=now + requeue_after, limit=_BATCH)
        for row_id, times_published in taken:
            if times_published > 2:
                await rows.postpone_next_look(
                    row_id, now + _backoff(requeue_after, times_published)
                )
            uow.enqueue_after_commit(job_for(row_id))
        return len(taken)


def _backoff(requeue_after: timedelta, times_published: int) -> timedelta:
    return min(requeue_after * (1 << max(times_published - 2, 0)), _MAX_REPUBLISH_BACKOFF)
