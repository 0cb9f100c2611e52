"""The unit of work of twostep: one transaction over every feature's repositories.

The transaction, its buffers (jobs, change notices, webhook announcements, hooks) and their
hand-over after the commit are ``shared.kit.db.session``'s; which repositories a unit of work
carries is decided here, where the features meet.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncSession

from shared.audit.repository import EventRepository
from shared.kit.clock import Clock, SystemClock
from shared.kit.db.holds import Hold
from shared.kit.db.session import AfterCommit, Database, UnitOfWorkBase
from shared.tenants.repository import ApiKeyRepository, IdempotencyRepository, TenantRepository
from shared.two_step.repository import FactorRepository, RecoveryCodeRepository
from shared.verifications.check_repository import CheckRepository
from shared.verifications.repository import VerificationRepository
from shared.webhooks.repository import WebhookDeliveryRepository, WebhookEndpointRepository


class Repositories:
    """Every repository, over one hold on the database."""

    def __init__(self, hold: Hold) -> None:
        self._hold = hold
        self.tenants = TenantRepository(hold)
        self.api_keys = ApiKeyRepository(hold)
        self.verifications = VerificationRepository(hold)
        self.checks = CheckRepository(hold)
        self.idempotency = IdempotencyRepository(hold)
        self.factors = FactorRepository(hold)
        self.recovery_codes = RecoveryCodeRepository(hold)
        self.events = EventRepository(hold)
        self.webhook_endpoints = WebhookEndpointRepository(hold)
        self.webhook_deliveries = WebhookDeliveryRepository(hold)

    @property
    def session(self) -> AsyncSession:
        """The ORM session, for what no repository says (a health check's SELECT 1)."""
        return self._hold.session


class UnitOfWork(UnitOfWorkBase[Repositories], Repositories):
    def __init__(
        self,
        holds: Callable[[], Hold],
        after_commit: AfterCommit | None = None,
        *,
        reads: Callable[[], Hold] | None = None,
        turns: asyncio.Semaphore | None = None,
        clock: Clock | None = None,
    ) -> None:
        UnitOfWorkBase.__init__(self, holds, after_commit, reads=reads, turns=turns, clock=clock)

    def _bind(self, hold: Hold) -> None:
        Repositories.__init__(self, hold)

    @staticmethod
    def _over(hold: Hold) -> Repositories:
        return Repositories(hold)


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
            database.writing,
            self.after_commit,
            reads=database.reading,
            turns=self._turns,
            clock=self.clock,
        )

    def reading(self) -> UnitOfWork:
        """For reads only: on PostgreSQL each statement is its own round trip, with no
        transaction around it."""
        return UnitOfWork(self.database.reading, clock=self.clock)

    async def for_one_statement(self, tenant_id: uuid.UUID) -> UnitOfWork:
        """For work of the tenant's that writes one statement (a change and its record,
        ``appending``): ``single_statements()``, unless the tenant has a webhook endpoint —
        the outbox writes a change's deliveries with it, in its transaction, so then it gets
        one. The answer stands for the unit of work: without a transaction it has no outbox,
        which could otherwise find an endpoint made since (it is told of new ones within its
        cache's few seconds anyway) and write deliveries apart from their change."""
        after_commit = self.after_commit
        outbox = after_commit.outbox
        if outbox is not None and await outbox.reaches_endpoints(tenant_id, self.reading):
            return self()
        return self.single_statements(replace(after_commit, outbox=None))

    def single_statements(self, after_commit: AfterCommit | None = None) -> UnitOfWork:
        """For work that is one statement or several independent ones (a claim, then a read):
        on PostgreSQL each commits on its own, saving the BEGIN and COMMIT round trips; on
        SQLite it is an ordinary unit of work."""
        return UnitOfWork(
            self.database.single,
            after_commit or self.after_commit,
            reads=self.database.reading,
            turns=self._turns,
            clock=self.clock,
        )
