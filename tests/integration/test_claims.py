"""Claims are compare-and-set updates: under contention exactly one worker wins."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from shared.errors import AttemptError, ErrorCode
from shared.kit.clock import SystemClock, utcnow
from shared.kit.crypto import keyring_of
from shared.kit.db.session import AfterCommit, Database
from shared.kit.settings import Settings
from shared.operations.sweeper import Sweeper
from shared.tenants.keys import create_api_key
from shared.unit_of_work import UnitOfWorkFactory
from shared.verifications.domain import VerificationStatus
from shared.verifications.service import VerificationRequest, Verifications
from tests.fakes import FakeCodeStash, FakeJobQueue, fake_guards
from tests.support import random_phone


def verifications_of(settings: Settings) -> Verifications:
    return Verifications(
        settings, fake_guards(), FakeCodeStash(), SystemClock(), keyring_of(settings)
    )


async def test_only_one_of_many_concurrent_claims_wins(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    async with uow_factory() as uow:
        key, _ = await create_api_key(uow, f"claims-{uuid.uuid4().hex[:8]}")
    async with uow_factory() as uow:
        verification = await verifications_of(settings).request(
            uow, key, VerificationRequest(to=random_phone())
        )
    # Eight workers, each with its own connections, claim at once.
    databases = [Database.connect(settings.database_url, pool_size=1) for _ in range(8)]

    async def claim(database: Database) -> uuid.UUID | None:
        now = utcnow()
        async with UnitOfWorkFactory(database)() as uow:
            row = await uow.verifications.claim(
                verification.id, now=now, until=now + timedelta(seconds=30)
            )
        return row.claim_token if row else None

    try:
        tokens = await asyncio.gather(*(claim(database) for database in databases))
    finally:
        for database in databases:
            await database.dispose()
    winners = [token for token in tokens if token is not None]
    assert len(tokens) == 8 and len(winners) == 1

    async with uow_factory() as uow:
        row = await uow.verifications.get(verification.id)
        assert row is not None
        assert row.status is VerificationStatus.SENDING and row.claim_token == winners[0]
        assert row.provider_attempts == 1
        # Only the winner may settle it.
        error = AttemptError(ErrorCode.PROVIDER_REJECTED, "test")
        now = utcnow()
        assert not await uow.verifications.give_up_send(
            verification.id, uuid.uuid4(), error=error, now=now
        )
        assert await uow.verifications.give_up_send(
            verification.id, winners[0], error=error, now=now
        )


async def test_two_sweepers_at_once_publish_each_lost_job_once(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    async with uow_factory() as uow:
        key, _ = await create_api_key(uow, f"sweep-{uuid.uuid4().hex[:8]}")
    ids = set()
    for _ in range(40):
        async with uow_factory() as uow:
            verification = await verifications_of(settings).request(
                uow, key, VerificationRequest(to=random_phone())
            )
        ids.add(verification.id)
    later = utcnow() + settings.requeue_after + timedelta(seconds=1)
    queues = [FakeJobQueue(), FakeJobQueue()]
    databases = [Database.connect(settings.database_url, pool_size=1) for _ in queues]
    sweepers = [
        Sweeper(
            UnitOfWorkFactory(database, AfterCommit(queue)),
            settings,
            SystemClock(),
            FakeCodeStash(),
        )
        for database, queue in zip(databases, queues, strict=True)
    ]
    try:
        await asyncio.gather(*(sweeper.sweep(now=later) for sweeper in sweepers))
    finally:
        for database in databases:
            await database.dispose()
    published = [job.entity_id for queue in queues for job in queue.published]
    mine = [entity_id for entity_id in published if entity_id in ids]
    assert sorted(mine) == sorted(ids), "a lost job was published twice, or not at all"
