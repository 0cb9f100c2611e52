"""Unit tests: fakes behind the ports, and a SQLite file copied from one migrated template."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.db.migrate import upgrade
from shared.db.models import ApiKey
from shared.db.session import UnitOfWorkFactory, make_engine, make_session_factory
from shared.limits import Guards
from shared.services.delivery import DeliveryDeps
from shared.services.keys import create_api_key
from shared.settings import Settings
from tests.fakes import (
    FakeCodeStash,
    FakeJobQueue,
    FakeThrottle,
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
    )


@pytest.fixture
def job_queue() -> FakeJobQueue:
    return FakeJobQueue()


@pytest.fixture
def unit_uow_factory(
    unit_settings: Settings, job_queue: FakeJobQueue
) -> Iterator[UnitOfWorkFactory]:
    engine = make_engine(unit_settings.database_url, pool_size=2)
    yield UnitOfWorkFactory(make_session_factory(engine), job_queue)
    engine.dispose()


@pytest.fixture
def verify() -> FakeVerifyClient:
    return FakeVerifyClient()


@pytest.fixture
def stash() -> FakeCodeStash:
    return FakeCodeStash()


@pytest.fixture
def throttle() -> FakeThrottle:
    return FakeThrottle()


@pytest.fixture
def guards() -> Guards:
    return fake_guards()


@pytest.fixture
def deps(
    unit_uow_factory: UnitOfWorkFactory,
    verify: FakeVerifyClient,
    stash: FakeCodeStash,
    unit_settings: Settings,
    throttle: FakeThrottle,
    guards: Guards,
) -> DeliveryDeps:
    return DeliveryDeps(
        uow_factory=unit_uow_factory,
        verify=verify,
        stash=stash,
        settings=unit_settings,
        throttle=throttle,
        lockout=guards.lockout,
    )


@pytest.fixture
def key(unit_uow_factory: UnitOfWorkFactory) -> ApiKey:
    with unit_uow_factory() as uow:
        key, _plaintext = create_api_key(uow, "unit")
        uow.commit()
    return key
