"""The benchmark's database: a fresh PostgreSQL database (dropped afterwards) or a SQLite file,
and the one question the benchmark asks it with plain SQL: which verifications never settled."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, make_url, text
from sqlalchemy.exc import SQLAlchemyError

from benchmarks.processes import BenchError, say

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# A verification in one of these no longer needs anything from the system.
FINAL = frozenset({"approved", "failed", "expired", "canceled", "max_attempts_reached"})
SETTLED = FINAL | {"pending"}
_CONNECT = {"connect_timeout": 5}


def driver_url(url: str) -> URL:
    """twostep takes ``postgresql://`` as it is; SQLAlchemy alone would look for psycopg2."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@contextlib.contextmanager
def bench_database(backend: str, postgres_url: str, work_dir: Path, run_id: str) -> Iterator[str]:
    """Yields the ``TWOSTEP_DATABASE_URL`` of an empty database that lives as long as the block."""
    if backend == "sqlite":
        yield f"sqlite:///{work_dir / 'bench.db'}"
        return
    admin_url = driver_url(postgres_url)
    name = f"twostep_bench_{run_id}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args=_CONNECT)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:
        admin.dispose()
        shown = admin_url.render_as_string(hide_password=True)
        raise BenchError(
            f"cannot create a database on PostgreSQL at {shown}: {exc.__class__.__name__}: "
            f"{_first_line(exc)}\n"
            "start PostgreSQL, pass --postgres-url (or set TWOSTEP_BENCH_POSTGRES_URL), "
            "or run with --db sqlite"
        ) from exc
    say(f"created database {name}")
    try:
        database_url = make_url(postgres_url).set(database=name)
        yield database_url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        say(f"dropped database {name}")


def _first_line(exc: SQLAlchemyError) -> str:
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return lines[0] if lines else ""


@dataclass(frozen=True)
class Settlement:
    statuses: dict[str, int]
    lost: int
    waited_seconds: float


def wait_settled(database_url: str, user_ids: set[str], timeout: float = 15) -> Settlement:
    """Wait until every verification of ``user_ids`` is pending or final; whatever is not by
    ``timeout`` (still queued or sending, long after the storm) counts as lost."""
    url = driver_url(database_url)
    engine = create_engine(url, connect_args=_CONNECT if url.drivername != "sqlite" else {})
    started = time.monotonic()
    try:
        while True:
            statuses = _statuses(engine, user_ids)
            lost = sum(n for status, n in statuses.items() if status not in SETTLED)
            if lost == 0 or time.monotonic() - started >= timeout:
                waited = round(time.monotonic() - started, 2)
                return Settlement(dict(sorted(statuses.items())), lost, waited)
            time.sleep(0.25)
    finally:
        engine.dispose()


def _statuses(engine: Engine, user_ids: set[str]) -> Counter[str]:
    # The benchmark's user ids all start with "bench-"; the set picks this storm's rows.
    query = text("SELECT user_id, status FROM verifications WHERE user_id LIKE 'bench-%'")
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return Counter(str(status) for user_id, status in rows if user_id in user_ids)
