"""Warming a process up before it takes traffic.

A process that starts cold pays, in its first requests or jobs, for opening its database
connections and for importing and connecting the broker's transport: after a deploy in a busy
hour, a burst of slow answers. Warming up is best effort: with the database or Redis down the
process still starts, and says so in ``/readyz`` and in its answers.
"""

from __future__ import annotations

import asyncio
import time

import structlog

from shared.kit.db.session import Database
from shared.kit.jobs import CeleryJobQueue, RedisJobQueue

log = structlog.get_logger(__name__)

WARM_UP_TIMEOUT_SECONDS = 10.0


async def warm_up(database: Database, publisher: CeleryJobQueue | RedisJobQueue | None) -> None:
    """``publisher``: what publishes the process's jobs to the broker, if anything does."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(WARM_UP_TIMEOUT_SECONDS):
            await database.warm_up()
            if publisher is not None:
                await publisher.connect()
    except Exception as exc:  # whatever is down is reported where it is used
        log.warning("warm_up.failed", error=repr(exc))
        return
    log.info("warm_up.done", seconds=round(time.monotonic() - started, 3))
