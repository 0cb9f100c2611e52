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
from typing import Any, Generic, Protocol, Self, TypeVar, cast

import structlog
from sqlalchemy import event, make_url
from sqlalchemy.engine import URL, AdaptedConnection, Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import Pool, QueuePool

from shared.kit.changes import Announcement, Change, ChangeFeed
from shared.kit.clock import Clock, SystemClock
from shared.kit.db.driver import DRIVER_ERRORS, as_sqlalchemy_error, on_driver
from shared.kit.jobs import Job, JobQueue, PublishFailed

log = structlog.get_logger(__name__)

R = TypeVar("R")

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Database:
    """A process's engines. ``writer`` is for units of work that change rows, ``reader`` for
    those that only read (on PostgreSQL both are the same pool)."""

    writer: Sessions
    reader: Sessions
    # Every statement commits on its own (PostgreSQL); on SQLite, the writer.
    autocommit: Sessions
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
            writing = _sessions(writer)
            return cls(writing, _sessions(reader), writing, (writer, reader), connections=1)
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
            # Transactions are begun and ended on the driver (``_DriverTransactions``): a
            # unit of work that only reads, or is one statement, needs none.
            isolation_level="AUTOCOMMIT",
        )
        event.listen(engine.sync_engine, "reset", _end_abandoned_transaction)
        plain = _sessions(engine, _DriverSession)
        writing = _sessions(engine, _DriverTransactions)
        return cls(writing, plain, plain, (engine,), connections=pool_size)

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


# Where a PostgreSQL session keeps its connection's driver connection while it holds one, and
# a writing session the transaction it began there.
DRIVER = "twostep.driver"
BEGUN = "twostep.begun"


class _DriverSession(Session):
    """A PostgreSQL session whose prepared statements run on the driver (``driver``)."""


class _DriverTransactions(_DriverSession):
    """A PostgreSQL session that begins a transaction on its connection as it takes one. The
    engine's connections are in autocommit mode, so the driver's transaction is the only one:
    SQLAlchemy's statements (the ORM's) and the driver's run in it alike, and the unit of work
    commits it (``UnitOfWorkBase``)."""


@event.listens_for(_DriverSession, "after_begin", propagate=True)
def _remember_driver(session: Session, _transaction: Any, connection: Connection) -> None:
    adapted = cast(AdaptedConnection, connection.connection.dbapi_connection)
    driver = adapted.driver_connection
    if isinstance(session, _DriverTransactions):
        try:
            adapted.run_async(lambda driver: driver.execute("BEGIN"))
        except DRIVER_ERRORS as error:
            translated = as_sqlalchemy_error(error, "BEGIN")
            if translated.connection_invalidated:
                connection.invalidate()
            raise translated from error
        session.info[BEGUN] = driver
    session.info[DRIVER] = driver


@event.listens_for(_DriverSession, "after_transaction_end", propagate=True)
def _forget_driver(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the connection goes back to the pool
        session.info.pop(DRIVER, None)


def _end_abandoned_transaction(dbapi_connection: Any, _record: Any, _state: Any) -> None:
    """A connection goes back to the pool: a transaction nobody ended (a unit of work
    cancelled before its rollback went out) ends here, not in the next borrower's work."""
    adapted = cast(AdaptedConnection, dbapi_connection)
    if adapted.driver_connection.is_in_transaction():
        adapted.run_async(lambda driver: driver.execute("ROLLBACK"))


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


class UnitOfWorkBase(ABC, Generic[R]):
    """One transaction. ``async with uow.reads() as read`` reads what is committed, outside it,
    on a connection given back at the end of the block: a service reads there what it needs
    before it consults Redis, so that no connection is held while it waits on anything else.

    What it reads and writes with — the repositories — is its subclass's
    (``shared.unit_of_work.UnitOfWork``): this is the transaction, the buffers and the hand-over.
    """

    session: AsyncSession

    def __init__(
        self,
        sessions: Sessions,
        after_commit: AfterCommit | None = None,
        *,
        reads: Sessions | None = None,
        turns: asyncio.Semaphore | None = None,
        clock: Clock | None = None,
    ) -> None:
        # The process's clock: what its rows' and events' times are read from.
        self.clock: Clock = clock or SystemClock()
        self._sessions = sessions
        self._reads = reads or sessions
        self._turns = turns
        self._after_commit = after_commit or AfterCommit()
        self._jobs: list[Job] = []
        self._changes: dict[uuid.UUID, Change] = {}
        self._announcements: list[Announcement] = []
        self._hooks: list[Callable[[], Awaitable[None]]] = []

    async def __aenter__(self) -> Self:
        if self._turns is not None:
            await self._turns.acquire()
        self._bind(self._sessions())
        return self

    @abstractmethod
    def _bind(self, session: AsyncSession) -> None:
        """Take ``session`` for this transaction (and build the repositories over it)."""

    @staticmethod
    @abstractmethod
    def _over(session: AsyncSession) -> R:
        """The repositories over another session (for ``reads``)."""

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
                await self._commit()
                committed = True
        finally:
            jobs, changes, hooks = self._jobs, self._changes, self._hooks
            self._jobs, self._changes, self._announcements, self._hooks = [], {}, [], []
            try:
                # Rolls back whatever was not committed; loaded rows stay readable (no expiry).
                await self._end_begun("ROLLBACK")
                await self.session.close()
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
        async with self._reads() as session:
            yield self._over(session)

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
        await self.session.flush()

    async def rollback(self) -> None:
        self._jobs, self._changes, self._announcements, self._hooks = [], {}, [], []
        await self._end_begun("ROLLBACK")
        await self.session.rollback()

    async def _commit(self) -> None:
        session = self.session
        # The ORM's pending rows first: on PostgreSQL, into the driver's transaction.
        if session.new or session.dirty or session.deleted:
            await session.flush()
        if isinstance(session.sync_session, _DriverSession):
            # PostgreSQL: the driver's transaction, if one was begun, is the only one; the
            # session's own commit would have nothing to send, its close gives the connection
            # back.
            await self._end_begun("COMMIT")
        else:
            await session.commit()

    async def _end_begun(self, ending: str) -> None:
        """End the transaction begun on the driver, if this session began one (PostgreSQL)."""
        driver = self.session.info.pop(BEGUN, None)
        if driver is not None:
            await on_driver(self.session, ending, driver.execute(ending))

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
