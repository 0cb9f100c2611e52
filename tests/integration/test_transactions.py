"""A unit of work is one transaction whichever way its statements run: prepared ones on the
driver (PostgreSQL), the ORM's through SQLAlchemy. What it wrote commits together or not at
all, and the connection it gives back carries nothing into the next one's work."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import make_url, select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from shared.kit.db.session import AfterCommit, Database
from shared.kit.settings import Settings
from shared.tenants.keys import create_api_key
from shared.tenants.models import ApiKey
from shared.unit_of_work import UnitOfWork, UnitOfWorkFactory
from shared.verifications.domain import Channel, VerificationStatus
from shared.verifications.models import Verification
from shared.verifications.service import VerificationRequest
from tests.fakes import FakeChangeFeed, FakeJobQueue
from tests.integration.test_claims import verifications_of
from tests.support import random_phone


class Abandoned(Exception):
    pass


@pytest.fixture
async def one_connection(settings: Settings) -> AsyncIterator[UnitOfWorkFactory]:
    """Units of work that all use the same connection, one after another."""
    database = Database.connect(settings.database_url, pool_size=1)
    yield UnitOfWorkFactory(database, AfterCommit(FakeJobQueue(), FakeChangeFeed()))
    await database.dispose()


async def _write_both_ways(uow: UnitOfWork, settings: Settings, name: str) -> uuid.UUID:
    """An API key through the ORM, a verification through prepared statements."""
    key, _ = await create_api_key(uow, name)
    await uow.flush()
    verification = await verifications_of(settings).request(
        uow, key, VerificationRequest(to=random_phone())
    )
    return verification.id


async def _exists(
    factory: UnitOfWorkFactory, key_name: str, verification_id: uuid.UUID
) -> tuple[bool, bool]:
    async with factory.reading() as uow:
        key = await uow.session.scalar(select(ApiKey).where(ApiKey.name == key_name))
        verification = await uow.verifications.get(verification_id)
    return key is not None, verification is not None


async def _commit_something(factory: UnitOfWorkFactory) -> None:
    async with factory() as uow:
        await create_api_key(uow, f"after-{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("ending", ["raises", "is_cancelled"])
async def test_what_an_unfinished_unit_of_work_wrote_either_way_is_gone(
    one_connection: UnitOfWorkFactory, settings: Settings, ending: str
) -> None:
    name = f"{ending}-{uuid.uuid4().hex[:8]}"
    written: list[uuid.UUID] = []
    holding = asyncio.Event()

    async def unfinished() -> None:
        async with one_connection() as uow:
            written.append(await _write_both_ways(uow, settings, name))
            if ending == "raises":
                raise Abandoned
            holding.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(unfinished())
    if ending == "is_cancelled":
        await holding.wait()
        task.cancel()
    with pytest.raises(Abandoned if ending == "raises" else asyncio.CancelledError):
        await task
    # The next unit of work, on the same connection, commits: nothing of the first with it.
    await _commit_something(one_connection)
    assert await _exists(one_connection, name, written[0]) == (False, False)


async def test_what_a_unit_of_work_wrote_either_way_commits_together(
    one_connection: UnitOfWorkFactory, settings: Settings
) -> None:
    name = f"committed-{uuid.uuid4().hex[:8]}"
    async with one_connection() as uow:
        verification_id = await _write_both_ways(uow, settings, name)
    assert await _exists(one_connection, name, verification_id) == (True, True)


async def test_a_unit_of_work_rolled_back_midway_begins_again(
    one_connection: UnitOfWorkFactory, settings: Settings
) -> None:
    first, second = f"undone-{uuid.uuid4().hex[:8]}", f"kept-{uuid.uuid4().hex[:8]}"
    async with one_connection() as uow:
        undone = await _write_both_ways(uow, settings, first)
        await uow.rollback()
        kept = await _write_both_ways(uow, settings, second)
    assert await _exists(one_connection, first, undone) == (False, False)
    assert await _exists(one_connection, second, kept) == (True, True)


async def _written_and_read_back(
    factory: UnitOfWorkFactory, settings: Settings
) -> tuple[Verification, Verification]:
    """A verification as a prepared statement reads it, and as the ORM does."""
    async with factory() as uow:
        verification_id = await _write_both_ways(uow, settings, f"row-{uuid.uuid4().hex[:8]}")
    async with factory.reading() as uow:
        prepared = await uow.verifications.get(verification_id)
        orm = await uow.session.get(Verification, verification_id)
    assert prepared is not None and orm is not None
    return prepared, orm


def _columns(row: Verification) -> dict[str, object]:
    return {column.key: getattr(row, column.key) for column in Verification.__table__.columns}


async def test_a_row_read_by_a_prepared_statement_is_the_row_the_orm_reads(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    prepared, orm = await _written_and_read_back(uow_factory, settings)
    assert _columns(prepared) == _columns(orm)
    # Types too: enums as enums, the number decrypted, times aware and in UTC.
    assert prepared.status is VerificationStatus.QUEUED and prepared.channel is Channel.SMS
    assert prepared.destination.startswith("+")
    assert prepared.created_at.utcoffset() is not None
    assert isinstance(prepared.id, uuid.UUID) and type(prepared.id) is type(orm.id)


async def test_a_prepared_insert_that_breaks_a_constraint_is_an_integrity_error(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    existing, _ = await _written_and_read_back(uow_factory, settings)
    copy = Verification(**_columns(existing))
    with pytest.raises(IntegrityError):
        async with uow_factory() as uow:
            await uow.verifications.insert(copy)


@pytest.mark.parametrize("commits", [True, False])
async def test_the_orm_after_a_prepared_statement_works_in_its_transaction(
    one_connection: UnitOfWorkFactory, settings: Settings, commits: bool
) -> None:
    """The prepared statement takes the connection; the ORM's session, made after, uses it
    (the pool has only the one) and writes in the same transaction."""
    async with one_connection() as uow:
        key, _ = await create_api_key(uow, f"owner-{uuid.uuid4().hex[:8]}")
    name = f"after-{uuid.uuid4().hex[:8]}"
    written: list[uuid.UUID] = []

    async def prepared_then_orm() -> None:
        async with one_connection() as uow:
            verification = await verifications_of(settings).request(
                uow, key, VerificationRequest(to=random_phone())
            )
            written.append(verification.id)
            await create_api_key(uow, name)
            await uow.flush()
            if not commits:
                raise Abandoned

    if commits:
        await prepared_then_orm()
    else:
        with pytest.raises(Abandoned):
            await prepared_then_orm()
    assert await _exists(one_connection, name, written[0]) == (commits, commits)


async def test_a_connection_the_server_dropped_is_not_lent_again(
    one_connection: UnitOfWorkFactory, settings: Settings
) -> None:
    """A unit of work whose connection the server killed fails as the database being
    unreachable (the API answers 503); the pool's one connection is replaced, not lent again."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop a connection")
    async with one_connection.reading() as uow:
        backend = await uow.session.scalar(text("SELECT pg_backend_pid()"))
    url = make_url(settings.database_url).set(drivername="postgresql")
    killer = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        assert await killer.fetchval("SELECT pg_terminate_backend($1)", backend)
        gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1"
        for _ in range(100):  # the backend exits a moment after it is told to
            if await killer.fetchval(gone, backend):
                break
            await asyncio.sleep(0.05)
    finally:
        await killer.close()
    # The killed connection is still the pool's one: the prepared statement finds it dead.
    with pytest.raises(OperationalError):
        async with one_connection.reading() as uow:
            await uow.verifications.get(uuid.uuid4())
    async with one_connection.reading() as uow:
        assert await uow.verifications.get(uuid.uuid4()) is None
        assert await uow.session.scalar(text("SELECT pg_backend_pid()")) != backend
