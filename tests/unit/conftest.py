"""Unit tests: fakes behind the ports, and a SQLite file copied from one migrated template."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.kit.db.migrate import upgrade
from shared.kit.db.session import AfterCommit, Database
from shared.kit.settings import Settings
from shared.limits.ports import Guards
from shared.tenants.keys import create_api_key
from shared.tenants.models import ApiKey
from shared.tenants.service import TenantDirectory
from shared.two_step.service import TwoStep
from shared.unit_of_work import UnitOfWorkFactory
from shared.verifications.code_jobs import CodeJobs
from shared.verifications.numbers import NumberChecks
from shared.verifications.service import Verifications
from tests.fakes import (
    FakeChangeFeed,
    FakeClock,
    FakeCodeStash,
    FakeGate,
    FakeJobQueue,
    FakeLineTypes,
    FakeVerifyClient,
    fake_guards,
)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def unit_settings(tmp_path: Path, migrated_template: Path) -> Settings:
    path = tmp_path / "unit.db"
    shutil.copy(migrated_template, path)
    return Settings(
        database_url=f"sqlite:///{path}",
        twilio_base_url="http://127.0.0.1:9",
        requeue_after_seconds=10,
        claim_lease_seconds=30,
        retry_backoff_base_seconds=0.5,
        retry_backoff_max_seconds=4,
        send_deadline_seconds=120,
        check_deadline_seconds=30,
        # Number checks have tests of their own; elsewhere they would only add provider calls.
        line_type_check=False,
        sim_swap_check=False,
    )


@pytest.fixture
def job_queue() -> FakeJobQueue:
    return FakeJobQueue()


@pytest.fixture
def changes() -> FakeChangeFeed:
    return FakeChangeFeed()


@pytest.fixture
async def unit_uow_factory(
    unit_settings: Settings, job_queue: FakeJobQueue, changes: FakeChangeFeed
) -> AsyncIterator[UnitOfWorkFactory]:
    database = Database.connect(unit_settings.database_url, pool_size=2)
    yield UnitOfWorkFactory(database, AfterCommit(job_queue, changes))
    await database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def verify() -> FakeVerifyClient:
    return FakeVerifyClient()


@pytest.fixture
def stash() -> FakeCodeStash:
    return FakeCodeStash()


@pytest.fixture
def gate() -> FakeGate:
    return FakeGate()


@pytest.fixture
def guards() -> Guards:
    return fake_guards()


@pytest.fixture
def verifications(
    unit_settings: Settings, guards: Guards, stash: FakeCodeStash, clock: FakeClock
) -> Verifications:
    return Verifications(
        settings=unit_settings,
        guards=guards,
        stash=stash,
        clock=clock,
        keyring=unit_settings.keyring(),
    )


@pytest.fixture
def two_step(verifications: Verifications, unit_settings: Settings) -> TwoStep:
    return TwoStep(verifications, unit_settings.keyring())


@pytest.fixture
def code_jobs(
    unit_uow_factory: UnitOfWorkFactory,
    verify: FakeVerifyClient,
    stash: FakeCodeStash,
    unit_settings: Settings,
    gate: FakeGate,
    guards: Guards,
    clock: FakeClock,
) -> CodeJobs:
    return CodeJobs(
        uow_factory=unit_uow_factory,
        verify=verify,
        stash=stash,
        gate=gate,
        lockout=guards.lockout,
        settings=unit_settings,
        clock=clock,
        tenants=TenantDirectory(
            unit_uow_factory.reading, unit_settings, verify.default_service, ttl_seconds=0.001
        ),
        numbers=NumberChecks(
            verify, FakeLineTypes(), unit_settings.keyring(), unit_settings, clock
        ),
    )


@pytest.fixture
async def key(unit_uow_factory: UnitOfWorkFactory) -> ApiKey:
    async with unit_uow_factory() as uow:
        key, _plaintext = await create_api_key(uow, "unit")
    return key
