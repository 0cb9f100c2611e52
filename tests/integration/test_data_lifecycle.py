"""Personal data over time, on PostgreSQL and SQLite: retention deletes what is old, and
``rekey`` moves every encrypted value to a new key and every keyed hash to a new secret."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import String, select, type_coerce, update

from shared.audit.models import Event
from shared.kit import crypto
from shared.kit.clock import SystemClock, utcnow
from shared.kit.crypto import Keyring, UnreadableData, generate_data_key, keyring_of
from shared.kit.db.session import AfterCommit, Database
from shared.kit.lookups import destination_lookup
from shared.kit.settings import Settings
from shared.operations.rekey import rekey
from shared.operations.retention import Retention
from shared.tenants.keys import create_api_key
from shared.tenants.models import ApiKey
from shared.two_step.models import Factor
from shared.two_step.service import Enrollment, TwoStep
from shared.unit_of_work import UnitOfWorkFactory
from shared.verifications.models import Verification, VerificationCheck
from shared.verifications.service import Verifications
from tests.fakes import FakeChangeFeed, FakeCodeStash, FakeJobQueue, fake_guards
from tests.support import fresh_database, random_phone


@pytest.fixture
def keyring_restored() -> Iterator[None]:
    """Tests here install keyrings of their own; the suite's comes back afterwards."""
    before = crypto.installed()
    yield
    crypto.install(before)


async def _key(uow_factory: UnitOfWorkFactory) -> ApiKey:
    async with uow_factory() as uow:
        key, _ = await create_api_key(uow, f"life-{uuid.uuid4().hex[:8]}")
    return key


async def _enrolment(
    uow_factory: UnitOfWorkFactory, settings: Settings, keyring: Keyring, key: ApiKey, phone: str
) -> tuple[Factor, Verification]:
    verifications = Verifications(
        settings, fake_guards(), FakeCodeStash(), SystemClock(), keyring_of(settings)
    )
    async with uow_factory() as uow:
        return await TwoStep(verifications, keyring).enroll(
            uow, key, f"user-{uuid.uuid4().hex[:6]}", Enrollment(phone, client_ip="198.51.100.4")
        )


async def test_retention_deletes_old_verifications_checks_and_events_only(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    key = await _key(uow_factory)
    keyring = keyring_of(settings)
    old_factor, old = await _enrolment(uow_factory, settings, keyring, key, random_phone())
    _new_factor, new = await _enrolment(uow_factory, settings, keyring, key, random_phone())
    long_ago = utcnow() - timedelta(days=settings.retention_days + 1)
    async with uow_factory() as uow:
        check = VerificationCheck(
            id=uuid.uuid4(), tenant_id=key.tenant_id, verification_id=old.id, status="queued",
            provider_attempts=0, enqueue_count=1, next_attempt_at=long_ago, created_at=long_ago,
            updated_at=long_ago, deadline_at=long_ago,
        )  # fmt: skip
        await uow.checks.insert(check)
        await uow.session.execute(
            update(Verification).where(Verification.id == old.id).values(created_at=long_ago)
        )
        await uow.session.execute(
            update(Event).where(Event.verification_id == old.id).values(occurred_at=long_ago)
        )
    report = await Retention(uow_factory, settings, SystemClock()).run()
    assert report.verifications >= 1 and report.events >= 2
    async with uow_factory() as uow:
        assert await uow.verifications.get(old.id) is None
        assert await uow.checks.get(check.id) is None
        assert await uow.verifications.get(new.id) is not None
        kept = await uow.factors.get(key.tenant_id, old_factor.user_id, old_factor.id)
        assert kept is not None and kept.enrollment_verification_id is None
        left = (await uow.session.scalars(select(Event.verification_id))).all()
        assert old.id not in left and new.id in left


@pytest.fixture
async def own_database(
    settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[UnitOfWorkFactory, Settings]]:
    """A database of this test's own: rekeying the session's would leave its other tests'
    rows under a key they do not hold."""
    with fresh_database(settings.database_url, tmp_path) as url:
        database = Database.connect(url, pool_size=2)
        try:
            factory = UnitOfWorkFactory(database, AfterCommit(FakeJobQueue(), FakeChangeFeed()))
            yield factory, settings.model_copy(update={"database_url": url})
        finally:
            await database.dispose()


async def test_rekey_moves_every_value_to_the_new_key_and_every_hash_to_the_new_secret(
    own_database: tuple[UnitOfWorkFactory, Settings], keyring_restored: None
) -> None:
    uow_factory, settings = own_database
    old_key, new_key = generate_data_key(), generate_data_key()
    before = Keyring([old_key], "the-old-lookup-secret")
    crypto.install(before)
    key = await _key(uow_factory)
    phone = random_phone()
    factor, verification = await _enrolment(uow_factory, settings, before, key, phone)

    after = Keyring([new_key, old_key], "the-new-lookup-secret")
    crypto.install(after)
    seen: list[tuple[str, int]] = []
    rewritten = await rekey(uow_factory, after, lambda column, done: seen.append((column, done)))
    assert (
        rewritten["verifications.destination"] >= 1 and rewritten["factors.destination_lookup"] >= 1
    )
    assert {column for column, _ in seen} >= {"verifications.destination", "events.client_ip"}

    only_new = Keyring([new_key], "the-new-lookup-secret")
    crypto.install(only_new)
    async with uow_factory() as uow:
        read = await uow.verifications.get(verification.id)
        assert read is not None and (read.destination, read.client_ip) == (phone, "198.51.100.4")
        stored = await uow.factors.get(key.tenant_id, factor.user_id, factor.id)
        assert stored is not None and stored.destination == phone
        assert stored.destination_lookup == destination_lookup(only_new, key.tenant_id, phone)
        raw = await uow.session.scalar(
            select(type_coerce(Verification.destination, String())).where(
                Verification.id == verification.id
            )
        )
    with pytest.raises(UnreadableData):
        Keyring([old_key], "x").decrypt(str(raw))
