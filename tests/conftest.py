"""Shared fixtures.

Databases: SQLite always; PostgreSQL too when ``TWOSTEP_TEST_DATABASE_URL`` names a server
(``.ci/run`` sets it). Every test that takes ``database_url`` runs once per backend. Each
session gets fresh databases, built by Alembic.

Redis: ``TWOSTEP_TEST_REDIS_URL`` if set; otherwise a throwaway ``redis-server`` of our own on a
free port, or, where none is installed, the embedded one (slow, but real enough).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

# Tests configure every process explicitly; a developer's shell must not leak into them.
for _name in list(os.environ):
    if (_name.startswith(("TWOSTEP_", "TWILIO_"))) and not _name.startswith("TWOSTEP_TEST_"):
        del os.environ[_name]

from tests.support import TEST_COUNTRIES, TEST_SECRETS  # noqa: E402

# Every Settings made in this process reads the suite's keys, as every process it starts does.
os.environ.update(TEST_SECRETS)

from sandbox.app import Sandbox, create_sandbox_app  # noqa: E402
from shared.kit.db.migrate import upgrade  # noqa: E402
from shared.kit.db.session import AfterCommit, Database  # noqa: E402
from shared.kit.settings import Settings  # noqa: E402
from shared.tenants.keys import create_api_key  # noqa: E402
from shared.unit_of_work import UnitOfWorkFactory  # noqa: E402
from tests.fakes import FakeChangeFeed, FakeJobQueue  # noqa: E402
from tests.support import (  # noqa: E402
    RedisServer,
    SandboxClient,
    ThreadedServer,
    postgres_database,
)

POSTGRES_URL = os.environ.get("TWOSTEP_TEST_DATABASE_URL")
SESSION_PREFIX = f"test-{uuid.uuid4().hex[:8]}:"


def _backends() -> list[str]:
    """Every backend there is, or those TWOSTEP_TEST_BACKENDS names: CI runs the suite on
    PostgreSQL first, then again as a newcomer on SQLite, and need not run SQLite twice."""
    available = ["sqlite"] + (["postgresql"] if POSTGRES_URL else [])
    wanted = os.environ.get("TWOSTEP_TEST_BACKENDS")
    if not wanted:
        return available
    chosen = [name.strip() for name in wanted.split(",") if name.strip()]
    missing = [name for name in chosen if name not in available]
    if missing or not chosen:
        raise pytest.UsageError(
            f"TWOSTEP_TEST_BACKENDS={wanted!r}: not available: {missing or 'none named'} "
            "(postgresql needs TWOSTEP_TEST_DATABASE_URL)"
        )
    return chosen


BACKENDS = _backends()


def pytest_report_header() -> list[str]:
    redis = os.environ.get("TWOSTEP_TEST_REDIS_URL") or "a throwaway redis-server (or embedded)"
    return [f"twostep databases: {', '.join(BACKENDS)}; redis: {redis}"]


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated, empty database of each backend, for the whole session."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "twostep.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    assert POSTGRES_URL is not None
    with postgres_database(POSTGRES_URL) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    configured = os.environ.get("TWOSTEP_TEST_REDIS_URL")
    if configured:
        yield configured
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[ThreadedServer]:
    server = ThreadedServer(create_sandbox_app(Sandbox())).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sandbox(sandbox_server: ThreadedServer) -> Iterator[SandboxClient]:
    client = SandboxClient(sandbox_server.url)
    yield client
    client.clear_faults()
    client.http.close()


def make_settings(
    database_url: str, redis_url: str, sandbox_url: str, **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "twilio_base_url": sandbox_url,
        "twilio_read_timeout_seconds": 2.0,
        "twilio_connect_timeout_seconds": 1.0,
        "worker_concurrency": 4,
        "requeue_after_seconds": 3.0,
        "claim_lease_seconds": 5.0,
        "retry_backoff_base_seconds": 0.2,
        "retry_backoff_max_seconds": 1.0,
        "send_deadline_seconds": 20.0,
        "check_deadline_seconds": 10.0,
        # The suite may share a Redis with other runs: its keys and queues are its own.
        "redis_key_prefix": SESSION_PREFIX,
        "limit_per_country": "1000000 per day",
        # The API refuses to start without an allow-list, as in production.
        "allowed_countries": TEST_COUNTRIES,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str, redis_url: str, sandbox_server: ThreadedServer) -> Settings:
    return make_settings(database_url, redis_url, sandbox_server.url)


@pytest.fixture
async def uow_factory(settings: Settings) -> AsyncIterator[UnitOfWorkFactory]:
    """Direct database access for arranging and asserting; jobs it buffers go to a fake."""
    database = Database.connect(settings.database_url, pool_size=4)
    yield UnitOfWorkFactory(database, AfterCommit(FakeJobQueue(), FakeChangeFeed()))
    await database.dispose()


@pytest.fixture
async def api_key(uow_factory: UnitOfWorkFactory) -> str:
    async with uow_factory() as uow:
        _key, plaintext = await create_api_key(uow, f"test-{uuid.uuid4().hex[:12]}")
    return plaintext
