"""Engines, sessions and the unit of work's transaction, on SQLAlchemy's asyncio extension.

One ``Database`` per process. A unit of work is a block of one transaction at a time: it commits
when the block ends without an exception and rolls back otherwise, and only after its commit
publishes the jobs and change notices it buffered. A worker is never handed a row that does not
exist yet, and a waiter is never woken before the change it waits for is visible.

A transaction holds a connection only while it talks to the database: a service that must consult
Redis between reading and writing reads in ``uow.reads()`` (committed rows, its connection given
back at once) and begins its transaction only with its first write.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar

import structlog
from sqlalchemy import event, make_url
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool, QueuePool

from shared.kit.changes import Announcement, Change, ChangeFeed
from shared.kit.clock import Clock, SystemClock
from shared.kit.db.holds import (
    DriverHold,
    DriverSession,
    Hold,
    SessionHold,
    Sessions,
    end_abandoned_transaction,
)
from shared.kit.jobs import Job, JobQueue, PublishFailed

log = structlog.get_logger(__name__)

R = TypeVar("R")


@dataclass(frozen=True)
class Database:
    """A process's engines, and the holds on them a unit of work takes (``holds``): ``writing``
    for units of work that change rows, ``reading`` for those that only read, ``single`` for
    those whose statements each stand alone (on PostgreSQL they commit one by one; on SQLite it
    is ``writing``)."""

    writing: Callable[[], Hold]
    reading: Callable[[], Hold]
    single: Callable[[], Hold]
    engines: tuple[AsyncEngine, ...] = field(repr=False)
    # How many units of work may write at once: the writing pool's connections.
    connections: int = 1

    @classmethod
    def connect(cls, database_url: str, *, pool_size: int = 10) -> Database:
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite":
            # One writing connection per process: SQLite has one writer at a time anyway, and
            # waiting for the pool is an asyncio wait where waiting for its lock is a sleep loop.
            writer = _sqlite_engine(url, pool_size=1, immediate=True)
            reader = _sqlite_engine(url, pool_size=pool_size, immediate=False)
            writing = SessionHold.factory(_sessions(writer), writer)
            reading = SessionHold.factory(_sessions(reader), reader)
            return cls(writing, reading, writing, (writer, reader), connections=1)
        engine = create_async_engine(
            # asyncpg: a statement costs a quarter less CPU than through psycopg's async
            # connection (its protocol is compiled; psycopg's waits are Python generators).
            url.set(drivername="postgresql+asyncpg"),
            pool_size=pool_size,
            # Connections open as they are needed and stay: an overflow connection would be
            # closed at the end of each burst and opened again at the next, a PostgreSQL
            # backend started for a few statements.
            max_overflow=0,
            pool_timeout=30,
            pool_recycle=1800,
            # Transactions are begun and ended on the driver (``DriverHold``): a unit of work
            # that only reads, or is one statement, needs none.
            isolation_level="AUTOCOMMIT",
        )
        event.listen(engine.sync_engine, "reset", end_abandoned_transaction)
        sessions = _sessions(engine, DriverSession)
        # Reading and standing alone are the same on PostgreSQL: no transaction at all.
        standalone = DriverHold.factory(engine, sessions, transaction=False)
        return cls(
            DriverHold.factory(engine, sessions, transaction=True),
            standalone,
            standalone,
            (engine,),
            connections=pool_size,
        )

    async def warm_up(self) -> None:
        """Open every pool's connections now, before the process takes traffic, so that the
        first burst of requests after a start does not wait while they open one by one."""
        for engine in self.engines:
            pool = engine.pool
            opened = [await engine.connect() for _ in range(_size_of(pool))]
            for connection in opened:
                await connection.close()

    async def dispose(self) -> None:
        for engine in self.engines:
            await engine.dispose()


def _size_of(pool: Pool) -> int:
    return pool.size() if isinstance(pool, QueuePool) else 1


def _sessions(engine: AsyncEngine, session_class: type[Session] = Session) -> Sessions:
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=session_class
    )


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
    """Where a unit of work hands what it buffered once its commit succeeded — and the outbox
    that, just before the commit, turns the buffered changes into rows of their own (webhook
    deliveries) in the same transaction: a change is never committed without them."""

    jobs: JobQueue | None = None
    changes: ChangeFeed | None = None
    outbox: Outbox | None = None


class Outbox(Protocol):
    async def record(
        self, uow: Any, changes: Sequence[Change], announcements: Sequence[Announcement]
    ) -> None:
        """Write what the changes and announcements must cause, in ``uow`` (and buffer its
        jobs there)."""
        ...

    async def reaches_endpoints(self, tenant_id: uuid.UUID, reading: Callable[[], Any]) -> bool:
        """Whether a change of the tenant's may have something to write (``reading`` gives a
        unit of work to find out in, if it is not known)."""
        ...


class UnitOfWorkBase(ABC, Generic[R]):
    """One transaction. ``async with uow.reads() as read`` reads what is committed, outside it,
    on a connection given back at the end of the block: a service reads there what it needs
    before it consults Redis, so that no connection is held while it waits on anything else.

    What it reads and writes with — the repositories — is its subclass's
    (``shared.unit_of_work.UnitOfWork``): this is the transaction, the buffers and the hand-over.
    """

    def __init__(
        self,
        holds: Callable[[], Hold],
        after_commit: AfterCommit | None = None,
        *,
        reads: Callable[[], Hold] | None = None,
        turns: asyncio.Semaphore | None = None,
        clock: Clock | None = None,
    ) -> None:
        # The process's clock: what its rows' and events' times are read from.
        self.clock: Clock = clock or SystemClock()
        self._holds = holds
        self._reads = reads or holds
        self._taken: Hold | None = None
        self._turns = turns
        self._after_commit = after_commit or AfterCommit()
        self._jobs: list[Job] = []
        self._changes: dict[uuid.UUID, Change] = {}
        self._announcements: list[Announcement] = []
        self._hooks: list[Callable[[], Awaitable[None]]] = []

    async def __aenter__(self) -> Self:
        if self._turns is not None:
            await self._turns.acquire()
        self._taken = self._holds()
        self._bind(self._taken)
        return self

    @abstractmethod
    def _bind(self, hold: Hold) -> None:
        """Take ``hold`` for this transaction (and build the repositories over it)."""

    @staticmethod
    @abstractmethod
    def _over(hold: Hold) -> R:
        """The repositories over another hold (for ``reads``)."""

    @property
    def _held(self) -> Hold:
        if self._taken is None:
            raise RuntimeError("a unit of work is used inside its `async with` block")
        return self._taken

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        committed = False
        try:
            if exc_type is None:
                outbox = self._after_commit.outbox
                if outbox is not None and (self._changes or self._announcements):
                    await outbox.record(self, list(self._changes.values()), self._announcements)
                await self._held.commit()
                committed = True
        finally:
            jobs, changes, hooks = self._jobs, self._changes, self._hooks
            self._jobs, self._changes, self._announcements, self._hooks = [], {}, [], []
            try:
                # Rolls back whatever was not committed; loaded rows stay readable (no expiry).
                await self._held.close()
            finally:
                if self._turns is not None:
                    self._turns.release()
        # Only now, with the connection and the turn given back: publishing waits on Redis.
        if committed:
            for hook in hooks:
                await hook()
            await self._hand_over(jobs, changes)

    @contextlib.asynccontextmanager
    async def reads(self) -> AsyncIterator[R]:
        hold = self._reads()
        try:
            yield self._over(hold)
        finally:
            await hold.close()

    def enqueue_after_commit(self, job: Job) -> None:
        self._jobs.append(job)

    def notify_after_commit(self, *changes: Change) -> None:
        """Wake whoever waits on these rows (verifications, checks) once this commits."""
        for change in changes:
            self._changes[change.row_id] = change

    def after_commit(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` once this commits, before its jobs and change notices go out: what a
        waiter must find done when it wakes (a lockout counted) is done by then."""
        self._hooks.append(hook)

    def announce(self, announcement: Announcement) -> None:
        """Tell the tenant's webhook endpoints of it, if this commits."""
        self._announcements.append(announcement)

    async def flush(self) -> None:
        """Write pending rows now: one another row points to, or to meet a constraint early."""
        await self._held.flush()

    async def rollback(self) -> None:
        self._jobs, self._changes, self._announcements, self._hooks = [], {}, [], []
        await self._held.rollback()

    async def _hand_over(self, jobs: list[Job], changes: dict[uuid.UUID, Change]) -> None:
        if jobs:
            await self._publish(jobs)
        if changes and self._after_commit.changes is not None:
            try:
                await self._after_commit.changes.publish(changes.values())
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
