"""What a change and its record cost as one statement against two in a transaction: the API's two
writes of a login (a verification with the event of its request; a check with the attempt it
takes), each way in turn, on a throwaway PostgreSQL database. CPU is this process's (the
client's); wall time includes PostgreSQL's.

    python -m benchmarks.statement_writes [--postgres-url URL] [--logins 1500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.database import DEFAULT_POSTGRES_URL, bench_database
from shared.audit.domain import EventType
from shared.audit.models import Event
from shared.audit.service import Subject, event_of
from shared.kit.db.migrate import upgrade
from shared.kit.db.session import Database
from shared.tenants.keys import create_api_key
from shared.tenants.models import ApiKey
from shared.unit_of_work import UnitOfWorkFactory
from shared.verifications.domain import (
    Channel,
    Purpose,
    VerificationStatus,
)
from shared.verifications.models import Verification, VerificationCheck


def _rows(key: ApiKey, factory: UnitOfWorkFactory) -> tuple[Verification, Event, VerificationCheck]:
    now = datetime.now(UTC)
    verification = Verification(
        id=uuid.uuid4(),
        tenant_id=key.tenant_id,
        status=VerificationStatus.PENDING,
        purpose=Purpose.STANDALONE,
        channel=Channel.SMS,
        destination="+15005550006",
        destination_lookup=uuid.uuid4().hex,
        user_id="bench",
        api_key_id=key.id,
        send_attempts=1,
        check_attempts=0,
        provider_open=True,
        provider_attempts=1,
        enqueue_count=1,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
        deadline_at=now + timedelta(minutes=1),
    )
    subject = Subject(key.tenant_id, "bench", key.id, None, verification.destination)
    event = event_of(factory(), EventType.VERIFICATION_REQUESTED, subject, purpose="standalone")
    minute = timedelta(minutes=1)
    check = VerificationCheck.queued_for(
        verification, uuid.uuid4(), now, requeue_after=minute, deadline=minute
    )
    return verification, event, check


async def _two_in_a_transaction(factory: UnitOfWorkFactory, key: ApiKey) -> None:
    verification, event, check = _rows(key, factory)
    async with factory() as uow:
        await uow.verifications.insert(verification)
        await uow.events.append(event)
    async with factory() as uow:
        assert await uow.verifications.take_check_attempt(verification.id, 5, check.created_at)
        await uow.checks.insert(check)


async def _one_statement(factory: UnitOfWorkFactory, key: ApiKey) -> None:
    verification, event, check = _rows(key, factory)
    async with factory.single_statements() as uow:
        await uow.verifications.insert_recorded(verification, event)
    async with factory.single_statements() as uow:
        assert await uow.checks.insert_taking_attempt(check, 5, check.created_at)


async def _measure(database_url: str, logins: int, rounds: int) -> None:
    database = Database.connect(database_url, pool_size=2)
    factory = UnitOfWorkFactory(database)
    async with factory() as uow:
        key, _ = await create_api_key(uow, "statement-writes")
    ways = {"two in a transaction": _two_in_a_transaction, "one statement": _one_statement}
    try:
        for _ in range(rounds):
            for name, way in ways.items():
                cpu, wall = time.process_time(), time.perf_counter()
                for _ in range(logins):
                    await way(factory, key)
                cpu_ms = 1000 * (time.process_time() - cpu) / logins
                wall_ms = 1000 * (time.perf_counter() - wall) / logins
                print(f"{name:>22}: {cpu_ms:.2f} ms of CPU, {wall_ms:.2f} ms per login")
    finally:
        await database.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    parser.add_argument("--logins", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    # The throwaway database's personal data is encrypted with development keys.
    os.environ.setdefault("TWOSTEP_ENVIRONMENT", "development")
    with tempfile.TemporaryDirectory() as work_dir:
        run_id = uuid.uuid4().hex[:12]
        with bench_database("postgresql", arguments.postgres_url, Path(work_dir), run_id) as url:
            upgrade(url)
            asyncio.run(_measure(url, arguments.logins, arguments.rounds))


if __name__ == "__main__":
    main()
