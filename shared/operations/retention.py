"""Retention: personal data is kept as long as it is useful, then deleted.

Beat runs this every hour: verifications (with their checks) and audit events older than
``TWOSTEP_RETENTION_DAYS`` are deleted, a batch per transaction so that no long transaction
holds up the live traffic. Factors and recovery codes are the user's current state and stay;
a factor only loses its link to the enrolment verification being deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta

import structlog

from shared.kit.clock import Clock
from shared.kit.settings import Settings
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)

_BATCH = 500


@dataclass(frozen=True, slots=True)
class RetentionReport:
    verifications: int
    events: int


@dataclass(frozen=True)
class Retention:
    uow_factory: Callable[[], UnitOfWork]
    settings: Settings
    clock: Clock

    async def run(self) -> RetentionReport:
        cutoff = self.clock.now() - timedelta(days=self.settings.retention_days)
        verifications = events = 0
        while True:
            async with self.uow_factory() as uow:
                old = await uow.verifications.created_before(cutoff, _BATCH)
                if old:
                    await uow.factors.forget_enrollments(old)
                    await uow.verifications.delete(old)
            verifications += len(old)
            if len(old) < _BATCH:
                break
        while True:
            async with self.uow_factory() as uow:
                deleted = await uow.events.delete_older_than(cutoff, _BATCH)
            events += deleted
            if deleted < _BATCH:
                break
        report = RetentionReport(verifications=verifications, events=events)
        if verifications or events:
            log.info("retention.done", days=self.settings.retention_days, **asdict(report))
        return report
