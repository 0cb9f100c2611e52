"""Unit tests: a whole twostep core (``shared.bootstrap``) over fakes behind every port, on a
SQLite file copied from one migrated template. ``world`` is that core and its fakes
(``tests/unit/world.py``); ``make_world`` makes more, with settings of their own."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import fakeredis
import pytest

from shared.bootstrap import Adapters, Core, bootstrap
from shared.kit.db.migrate import upgrade
from shared.kit.settings import Settings
from shared.tenants.keys import create_api_key
from tests.fakes import (
    FakeChangeFeed,
    FakeClock,
    FakeCodeStash,
    FakeGate,
    FakeJobQueue,
    FakeLineTypes,
    FakePoster,
    FakeVerifyClient,
    fake_guards,
)
from tests.support import TEST_COUNTRIES
from tests.unit.world import MakeWorld, World


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
        # Production names its stores: nothing here talks to Redis (fakes stand behind it).
        redis_url="redis://127.0.0.1:6379/0",
        twilio_base_url="http://127.0.0.1:9",
        # Production (the default) wants an allow-list: the API refuses to start without one.
        allowed_countries=TEST_COUNTRIES,
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
async def make_world(unit_settings: Settings) -> AsyncIterator[MakeWorld]:
    """Worlds over one database: ``await make_world(line_type_check=True)`` is one whose
    settings differ by those values (fakes and a key of its own, the same rows). The values
    are not validated: pass them as Settings holds them (``frozenset({"GB"})``, not "GB")."""
    cores: list[Core] = []

    async def make(**overrides: object) -> World:
        settings = unit_settings.model_copy(update=overrides)
        clock, verify, jobs, changes = (
            FakeClock(),
            FakeVerifyClient(),
            FakeJobQueue(),
            FakeChangeFeed(),
        )
        stash, gate, line_types, poster = FakeCodeStash(), FakeGate(), FakeLineTypes(), FakePoster()
        guards = fake_guards()
        core = bootstrap(
            settings,
            Adapters(
                clock=clock,
                redis=fakeredis.FakeAsyncRedis(),
                jobs=jobs,
                changes=changes,
                guards=guards,
                stash=stash,
                verify=verify,
                gate=gate,
                line_types=line_types,
                poster=poster,
                listen=False,
            ),
        )
        cores.append(core)
        async with core.uow_factory() as uow:
            name = "unit" if len(cores) == 1 else f"unit-{len(cores)}"
            key, _plaintext = await create_api_key(uow, name)
        return World(
            core=core,
            clock=clock,
            verify=verify,
            jobs=jobs,
            changes=changes,
            stash=stash,
            gate=gate,
            guards=guards,
            line_types=line_types,
            poster=poster,
            key=key,
        )

    yield make
    for core in cores:
        await core.close()


@pytest.fixture
async def world(make_world: MakeWorld) -> World:
    return await make_world()
