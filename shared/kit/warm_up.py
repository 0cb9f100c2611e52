"""Warming a process up before it takes traffic.

A process that starts cold pays, in its first requests or jobs, for opening its database
connections and for importing and connecting the broker's transport: after a deploy in a busy
hour, a burst of slow answers. Warming up is best effort: with the database or Redis down the
process still starts, and says so in ``/readyz`` and in its answers.
"""

from __future__ import annotations

import asyncio
import time

import anyio
import redis.asyncio as redis
import structlog
from celery import Celery

from shared.kit.db.session import Database
from shared.kit.jobs import connect_publisher

log = structlog.get_logger(__name__)

WARM_UP_TIMEOUT_SECONDS = 10.0


async def warm_up(
    database: Database, publisher: Celery | None, broker: redis.Redis | None = None
) -> None:
    """``publisher``: Celery's client, when jobs go through it; ``broker``: the Redis client
    they are pushed with otherwise."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(WARM_UP_TIMEOUT_SECONDS):
            await database.warm_up()
            if publisher is not None:
                await anyio.to_thread.run_sync(connect_publisher, publisher)
            if broker is not None:
                await broker.ping()  # type: ignore[misc]  # redis-py types it sync or async
    except Exception as exc:  # whatever is down is reported where it is used
        log.warning("warm_up.failed", error=repr(exc))
        return
    log.info("warm_up.done", seconds=round(time.monotonic() - started, 3))
