"""Engines, sessions and the unit of work, on SQLAlchemy's asyncio extension.

One ``Database`` per process. A unit of work is a block of one transaction at a time: it commits
when the block ends without an exception and rolls back otherwise, and only after its commit
publishes the jobs and change notices it buffered. A worker is never handed a row that does not
exist yet, and a waiter is never woken before the change it waits for is visible.

A transaction holds a connection only while it talks to the database: a service that must wait on
something else (Redis, the provider) between reading and writing calls ``release()`` first.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import structlog
from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from shared.changes import ChangeFeed
from shared.db.repository import (
    ApiKeyRepository,
    CheckRepository,
    EventRepository,
    FactorRepository,
    IdempotencyRepository,
    RecoveryCodeRepository,
    VerificationRepository,
    mark_written,
    wrote_in,
)
from shared.jobs import Job, JobQueue, PublishFailed

log = structlog.get_logger(__name__)

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Database:
    """A process's engines. ``writer`` is for units of work that change rows, ``reader`` for
    those that only read (on PostgreSQL both are the same pool)."""

    writer: Sessions
    reader: Sessions
    engines: tuple[AsyncEngine, ...] = field(repr=False)

    @classmethod
    def connect(cls, database_url: str, *, pool_size: int = 10) -> Database:
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            # One writing connection per process: SQLite has one writer at a time anyway, and
            # waiting for the pool is an asyncio wait where waiting for its lock is a sleep loop.
            writer = _sqlite_engine(url, pool_size=1, immediate=True)
            reader = _sqlite_engine(url, pool_size=pool_size, immediate=False)
            return cls(_sessions(writer), _sessions(reader), (writer, reader))
        engine = create_async_engine(
            url.set(drivername="postgresql+psycopg"),
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=10,
            pool_recycle=1800,
        )
        sessions = _sessions(engine)
        return cls(sessions, sessions, (engine,))

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()


def _sessions(engine: AsyncEngine) -> Sessions:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def _sqlite_engine(url: URL, *, pool_size: int, immediate: bool) -> AsyncEngine:
    engine = create_async_engine(
        url.set(drivername="sqlite+aiosqlite"),
        connect_args={"timeout": 30},
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=30,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below); the driver's own transaction handling stays out.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        if not immediate:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A writer takes SQLite's write lock at BEGIN: a transaction that read and later writes
        # would otherwise fail with "database is locked" instead of waiting its turn. Readers
        # begin deferred and, in WAL mode, never wait for a writer.
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@dataclass(frozen=True)
class AfterCommit:
    """Where a unit of work hands what it buffered once its commit succeeded."""

    jobs: JobQueue | None = None
    changes: ChangeFeed | None = None


class UnitOfWork:
    def __init__(self, sessions: Sessions, after_commit: AfterCommit | None = None) -> None:
        self._sessions = sessions
        self._after_commit = after_commit or AfterCommit()
        self._jobs: list[Job] = []
        self._changes: set[uuid.UUID] = set()

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        self.api_keys = ApiKeyRepository(self.session)
        self.verifications = VerificationRepository(self.session)
        self.checks = CheckRepository(self.session)
        self.idempotency = IdempotencyRepository(self.session)
        self.factors = FactorRepository(self.session)
        self.recovery_codes = RecoveryCodeRepository(self.session)
        self.events = EventRepository(self.session)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self._commit()
        finally:
            self._jobs, self._changes = [], set()
            # Rolls back whatever was not committed; loaded rows stay readable (no expiry).
            await self.session.close()

    def enqueue_after_commit(self, job: Job) -> None:
        self._jobs.append(job)

    def notify_after_commit(self, *row_ids: uuid.UUID) -> None:
        """Wake whoever waits on these rows (verifications, checks) once this commits."""
        self._changes.update(row_ids)

    async def flush(self) -> None:
        """Write pending rows now: one another row points to, or to meet a constraint early."""
        if wrote_in(self.session):
            mark_written(self.session)
        await self.session.flush()

    async def rollback(self) -> None:
        self._jobs, self._changes = [], set()
        self.session.info.clear()
        await self.session.rollback()

    async def release(self) -> None:
        """End a transaction that only read, and give its connection back, before waiting on
        anything but the database. The next statement begins a new transaction."""
        if not self.session.in_transaction():
            return
        if wrote_in(self.session):
            raise RuntimeError("release() after a write would commit half a unit of work")
        await self.session.commit()
        self.session.info.clear()

    async def _commit(self) -> None:
        await self.session.commit()
        self.session.info.clear()
        jobs, self._jobs = self._jobs, []
        changes, self._changes = self._changes, set()
        if jobs:
            await self._publish(jobs)
        if changes and self._after_commit.changes is not None:
            try:
                await self._after_commit.changes.publish(changes)
            except Exception as exc:  # a waiter then answers at its timeout: nothing is lost
                log.warning("changes.publish_failed", count=len(changes), error=repr(exc))

    async def _publish(self, jobs: list[Job]) -> None:
        if self._after_commit.jobs is None:
            raise RuntimeError("this unit of work has no job queue to publish to")
        try:
            await self._after_commit.jobs.publish(jobs)
        except PublishFailed as exc:
            # The rows are committed and queued; the sweeper re-publishes them later.
            log.warning("job.publish_failed", jobs=len(jobs), error=str(exc))


class UnitOfWorkFactory:
    """What the per-process wiring hands to services: new units of work, writing or reading."""

    def __init__(self, database: Database, after_commit: AfterCommit | None = None) -> None:
        self.database = database
        self.after_commit = after_commit or AfterCommit()

    def __call__(self) -> UnitOfWork:
        return UnitOfWork(self.database.writer, self.after_commit)

    def reading(self) -> UnitOfWork:
        return UnitOfWork(self.database.reader)
