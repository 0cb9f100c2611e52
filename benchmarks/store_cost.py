"""What a login costs the stores: Redis commands and round trips, SQL transactions and rows
written, counted by the servers themselves (``INFO``, ``pg_stat_database``) around a storm.
Background work in the same window (heartbeats, sweeps) is included: a fleet pays it too.

Redis counts a script's inner calls and each command of a pipeline as commands; a round trip is
one answer written back to a client (``total_writes_processed``): a script or a pipeline is one,
and so is a message pushed to a subscriber."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis as redis_py
from sqlalchemy import create_engine, make_url, text

from benchmarks.database import driver_url

# PostgreSQL reports a backend's counts when it goes idle, within a second or so.
_STATS_SETTLE_SECONDS = 2.0
_TOP_COMMANDS = 8


@dataclass(frozen=True)
class StoreCounters:
    redis_commands: int
    redis_round_trips: int
    redis_by_command: dict[str, int]
    sql_transactions: int | None  # None on SQLite: it keeps no such counts
    sql_rows_written: int | None


@dataclass(frozen=True)
class StoreCost:
    redis_commands_per_login: float
    redis_round_trips_per_login: float
    # The commands a login costs most of, largest first, per login.
    redis_top_commands: dict[str, float]
    sql_transactions_per_login: float | None
    sql_rows_written_per_login: float | None


def read_counters(redis_url: str, database_url: str, *, settle: bool = False) -> StoreCounters:
    if settle:
        time.sleep(_STATS_SETTLE_SECONDS)
    with redis_py.Redis.from_url(redis_url, socket_timeout=5) as client:
        stats = client.info("stats")
        by_command = {
            name.removeprefix("cmdstat_"): int(figures["calls"])
            for name, figures in client.info("commandstats").items()
        }
    redis = (
        int(stats["total_commands_processed"]),
        int(stats["total_writes_processed"]),
        by_command,
    )
    if make_url(database_url).get_backend_name() != "postgresql":
        return StoreCounters(*redis, None, None)
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
    return StoreCounters(*redis, int(transactions), int(rows))


def cost_per_login(before: StoreCounters, after: StoreCounters, logins: int) -> StoreCost | None:
    if logins <= 0:
        return None

    def per(start: int | None, end: int | None) -> float | None:
        return None if start is None or end is None else round((end - start) / logins, 1)

    commands = {
        name: round((calls - before.redis_by_command.get(name, 0)) / logins, 1)
        for name, calls in after.redis_by_command.items()
    }
    top = dict(sorted(commands.items(), key=lambda item: -item[1])[:_TOP_COMMANDS])
    return StoreCost(
        redis_commands_per_login=round((after.redis_commands - before.redis_commands) / logins, 1),
        redis_round_trips_per_login=round(
            (after.redis_round_trips - before.redis_round_trips) / logins, 1
        ),
        redis_top_commands={name: per_login for name, per_login in top.items() if per_login},
        sql_transactions_per_login=per(before.sql_transactions, after.sql_transactions),
        sql_rows_written_per_login=per(before.sql_rows_written, after.sql_rows_written),
    )
