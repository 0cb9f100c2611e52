"""What a login costs the stores: Redis commands, SQL transactions and rows written, counted by
the servers themselves (``INFO stats``, ``pg_stat_database``) around a storm. Background work in
the same window (heartbeats, sweeps) is included: a fleet pays it too."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis as redis_py
from sqlalchemy import create_engine, make_url, text

from benchmarks.database import driver_url

# PostgreSQL reports a backend's counts when it goes idle, within a second or so.
_STATS_SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class StoreCounters:
    redis_commands: int
    sql_transactions: int | None  # None on SQLite: it keeps no such counts
    sql_rows_written: int | None


@dataclass(frozen=True)
class StoreCost:
    redis_commands_per_login: float
    sql_transactions_per_login: float | None
    sql_rows_written_per_login: float | None


def read_counters(redis_url: str, database_url: str, *, settle: bool = False) -> StoreCounters:
    if settle:
        time.sleep(_STATS_SETTLE_SECONDS)
    with redis_py.Redis.from_url(redis_url, socket_timeout=5) as client:
        commands = int(client.info("stats")["total_commands_processed"])
    if make_url(database_url).get_backend_name() != "postgresql":
        return StoreCounters(commands, None, None)
    engine = create_engine(driver_url(database_url))
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_stat_clear_snapshot()"))
            transactions, rows = connection.execute(
                text(
                    "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted"
                    " FROM pg_stat_database WHERE datname = current_database()"
                )
            ).one()
    finally:
        engine.dispose()
    return StoreCounters(commands, int(transactions), int(rows))


def cost_per_login(before: StoreCounters, after: StoreCounters, logins: int) -> StoreCost | None:
    if logins <= 0:
        return None

    def per(start: int | None, end: int | None) -> float | None:
        return None if start is None or end is None else round((end - start) / logins, 1)

    return StoreCost(
        redis_commands_per_login=round((after.redis_commands - before.redis_commands) / logins, 1),
        sql_transactions_per_login=per(before.sql_transactions, after.sql_transactions),
        sql_rows_written_per_login=per(before.sql_rows_written, after.sql_rows_written),
    )
