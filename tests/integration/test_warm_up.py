"""A process warms up before it takes traffic: its database pool is open and the broker's
transport connected, so the first burst of requests does not wait while they open."""

from __future__ import annotations

import time
import uuid

import redis as redis_py
from sqlalchemy.pool import QueuePool
from structlog.testing import capture_logs

from shared.kit.db.session import Database
from shared.kit.jobs import ALL_QUEUES, CeleryJobQueue, make_celery
from shared.kit.settings import Settings
from shared.kit.warm_up import WARM_UP_TIMEOUT_SECONDS, warm_up
from tests.conftest import make_settings


async def test_warming_up_opens_every_database_connection_and_declares_the_queues(
    settings: Settings,
) -> None:
    prefix = f"warm-{uuid.uuid4().hex[:8]}:"
    settings = make_settings(
        settings.database_url, settings.redis_url, settings.twilio_base_url or "",
        redis_key_prefix=prefix,
    )  # fmt: skip
    database = Database.connect(settings.database_url, pool_size=3)
    publisher = make_celery(settings, main="twostep.test")
    broker = redis_py.Redis.from_url(settings.redis_url, decode_responses=True)
    try:
        with capture_logs() as logs:
            await warm_up(database, CeleryJobQueue(publisher))
        opened = [engine.pool for engine in database.engines]
        assert all(isinstance(pool, QueuePool) for pool in opened)
        # Opened and given back: waiting in the pool for the first requests.
        assert [pool.checkedin() for pool in opened if isinstance(pool, QueuePool)] == [
            pool.size() for pool in opened if isinstance(pool, QueuePool)
        ]
        assert [entry["event"] for entry in logs] == ["warm_up.done"]
        bindings = list(broker.scan_iter(f"{prefix}_kombu.binding.*"))
        declared = {key.removeprefix(f"{prefix}_kombu.binding.") for key in bindings}
        assert declared >= set(ALL_QUEUES)
    finally:
        for key in broker.scan_iter(f"{prefix}*"):
            broker.delete(key)
        publisher.close()
        await database.dispose()


async def test_a_process_whose_database_is_down_still_starts() -> None:
    database = Database.connect("postgresql://nobody@127.0.0.1:9/nothing", pool_size=2)
    started = time.monotonic()
    try:
        with capture_logs() as logs:
            await warm_up(database, None)
    finally:
        await database.dispose()
    assert time.monotonic() - started < WARM_UP_TIMEOUT_SECONDS + 5
    assert [entry["event"] for entry in logs] == ["warm_up.failed"]
