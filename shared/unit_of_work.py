"""The unit of work of twostep: one transaction over every feature's repositories.

The transaction, its buffers (jobs, change notices, webhook announcements, hooks) and their
hand-over after the commit are ``shared.kit.db.session``'s; which repositories a unit of work
carries is decided here, where the features meet.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit.repository import EventRepository
from shared.kit.clock import Clock, SystemClock
from shared.kit.db.session import AfterCommit, Database, Sessions, UnitOfWorkBase
from shared.tenants.repository import ApiKeyRepository, IdempotencyRepository, TenantRepository
from shared.two_step.repository import FactorRepository, RecoveryCodeRepository
from shared.verifications.check_repository import CheckRepository
from shared.verifications.repository import VerificationRepository
from shared.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository


class Repositories:
    """Every repository, over one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.tenants = TenantRepository(session)
        self.api_keys = ApiKeyRepository(session)
        self.verifications = VerificationRepository(session)
        self.checks = CheckRepository(session)
        self.idempotency = IdempotencyRepository(session)
        self.factors = FactorRepository(session)
        self.recovery_codes = RecoveryCodeRepository(session)
        self.events = EventRepository(session)
        self.webhook_endpoints = WebhookEndpointRepository(session)
        self.webhook_deliveries = WebhookDeliveryRepository(session)


class UnitOfWork(UnitOfWorkBase[Repositories], Repositories):
    def __init__(
        self,
        sessions: Sessions,
        after_commit: AfterCommit | None = None,
        *,
        reads: Sessions | None = None,
        turns: asyncio.Semaphore | None = None,
        clock: Clock | None = None,
    ) -> None:
        UnitOfWorkBase.__init__(self, sessions, after_commit, reads=reads, turns=turns, clock=clock)

    def _bind(self, session: AsyncSession) -> None:
        Repositories.__init__(self, session)

    @staticmethod
    def _over(session: AsyncSession) -> Repositories:
        return Repositories(session)


class UnitOfWorkFactory:
    """What the per-process wiring hands to services: new units of work.

    Units that write take turns, as many at once as the pool has connections. Under a burst (a
    thousand requests at once) the others wait before they begin, instead of each holding a
    connection while the event loop serves everyone else between its statements: a few
    transactions finish quickly rather than many slowly, and none waits out the pool's timeout.
    """

    def __init__(
        self,
        database: Database,
        after_commit: AfterCommit | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.database = database
        self.after_commit = after_commit or AfterCommit()
        self.clock: Clock = clock or SystemClock()
        self._turns = asyncio.Semaphore(database.connections)

    def __call__(self) -> UnitOfWork:
        database = self.database
        return UnitOfWork(
            database.writer,
            self.after_commit,
            reads=database.reader,
            turns=self._turns,
            clock=self.clock,
        )

    def reading(self) -> UnitOfWork:
        """For reads only: on PostgreSQL each statement is its own round trip, with no
        transaction around it."""
        return UnitOfWork(self.database.reader, clock=self.clock)

    def single_statements(self) -> UnitOfWork:
        """For work that is one statement or several independent ones (a claim, then a read):
        on PostgreSQL each commits on its own, saving the BEGIN and COMMIT round trips; on
        SQLite it is an ordinary unit of work."""
        return UnitOfWork(
            self.database.autocommit,
            self.after_commit,
            reads=self.database.reader,
            turns=self._turns,
            clock=self.clock,
        )
