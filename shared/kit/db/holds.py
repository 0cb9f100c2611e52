"""A unit of work's hold on the database: the connection its statements run on, the ORM session
over it, and the transaction.

On SQLite the ORM session is the hold: SQLAlchemy begins (``BEGIN IMMEDIATE`` for a writer),
commits and gives the connection back. On PostgreSQL the engine's connections are in autocommit
mode and the hold begins and ends the transaction on the driver, where the repositories'
prepared statements run (``driver``); an ORM session is made only if a repository asks for one,
over the same connection. A session and its transaction's bookkeeping cost about 0.1 ms of CPU
per unit of work over the driver's own round trips — as much as the statements of most of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import asyncpg
from sqlalchemy import event
from sqlalchemy.engine import AdaptedConnection, Connection, Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from shared.kit.db.driver import DRIVER_ERRORS, as_sqlalchemy_error

T = TypeVar("T")
Sessions = async_sessionmaker[AsyncSession]


class Hold(ABC):
    dialect: Dialect

    @property
    @abstractmethod
    def session(self) -> AsyncSession:
        """The ORM session, on this hold's connection."""

    @abstractmethod
    async def driver(self) -> asyncpg.Connection | None:
        """The driver connection prepared statements run on (PostgreSQL), in this hold's
        transaction if it has one; None where they run through SQLAlchemy."""

    async def on_driver(self, sql: str, call: Awaitable[T]) -> T:
        """Await a call on the driver connection: its errors are SQLAlchemy's, and a
        connection found broken is not given back to the pool."""
        try:
            return await call
        except DRIVER_ERRORS as error:
            translated = as_sqlalchemy_error(error, sql)
            if translated.connection_invalidated:
                await self._invalidate()
            raise translated from error

    @abstractmethod
    async def _invalidate(self) -> None:
        """Have the connection closed rather than given back to the pool."""

    @abstractmethod
    async def flush(self) -> None:
        """The ORM's pending rows, written now."""

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def rollback(self) -> None:
        """Undo what was written; the hold may be used again (a new transaction)."""

    @abstractmethod
    async def close(self) -> None:
        """Give the connection back; what was not committed is rolled back."""


class SessionHold(Hold):
    """SQLite: everything through the ORM session."""

    def __init__(self, sessions: Sessions, dialect: Dialect) -> None:
        self._session = sessions()
        self.dialect = dialect

    @classmethod
    def factory(cls, sessions: Sessions, engine: AsyncEngine) -> Callable[[], Hold]:
        return lambda: cls(sessions, engine.dialect)

    @property
    def session(self) -> AsyncSession:
        return self._session

    async def driver(self) -> None:
        return None

    async def _invalidate(self) -> None:
        """Nothing to do: its statements go through SQLAlchemy, which invalidates its own."""

    async def flush(self) -> None:
        await self._session.flush()

    async def commit(self) -> None:
        await self._session.commit()

    async def rollback(self) -> None:
        await self._session.rollback()

    async def close(self) -> None:
        await self._session.close()


_HOLD = "twostep.hold"


class DriverSession(Session):
    """A PostgreSQL session made by a ``DriverHold``: it hands the connection it takes to its
    hold (``after_begin`` below)."""


class DriverHold(Hold):
    """PostgreSQL: one pooled connection, taken at the first statement (the ORM's or a prepared
    one), and the transaction begun on it then if the hold is for writing."""

    def __init__(self, engine: AsyncEngine, sessions: Sessions, *, transaction: bool) -> None:
        self._engine = engine
        self._sessions = sessions
        self._transaction = transaction
        self.dialect = engine.dialect
        self._connection: AsyncConnection | None = None  # taken for a prepared statement
        self._session: AsyncSession | None = None
        self._driver: asyncpg.Connection | None = None
        self._begun = False

    @classmethod
    def factory(
        cls, engine: AsyncEngine, sessions: Sessions, *, transaction: bool
    ) -> Callable[[], Hold]:
        return lambda: cls(engine, sessions, transaction=transaction)

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            # On the connection the prepared statements took, if they came first.
            bind = self._connection if self._connection is not None else self._engine
            self._session = self._sessions(bind=bind)
            self._session.info[_HOLD] = self
        return self._session

    async def driver(self) -> asyncpg.Connection:
        if self._driver is None:
            if self._session is not None:
                await self._session.connection()  # hands its connection over (``taken``)
            else:
                self._connection = connection = await self._engine.connect()
                self._driver = _adapted(
                    cast(Connection, connection.sync_connection)
                ).driver_connection
        driver = cast(asyncpg.Connection, self._driver)
        if self._transaction and not self._begun:
            await self.on_driver("BEGIN", driver.execute("BEGIN"))
            self._begun = True
        return driver

    def taken(self, connection: Connection) -> None:
        """The session took ``connection`` for an ORM statement (in SQLAlchemy's greenlet):
        prepared statements run there too, and the transaction begins there now."""
        adapted = _adapted(connection)
        self._driver = adapted.driver_connection
        if self._transaction and not self._begun:
            try:
                adapted.run_async(lambda driver: driver.execute("BEGIN"))
            except DRIVER_ERRORS as error:
                translated = as_sqlalchemy_error(error, "BEGIN")
                if translated.connection_invalidated:
                    connection.invalidate()
                raise translated from error
            self._begun = True

    async def _invalidate(self) -> None:
        if self._connection is not None:
            await self._connection.invalidate()
        elif self._session is not None:
            await (await self._session.connection()).invalidate()

    async def flush(self) -> None:
        session = self._session
        if session is not None and (session.new or session.dirty or session.deleted):
            await session.flush()

    async def commit(self) -> None:
        await self.flush()  # into the transaction (a first ORM statement begins it)
        await self._end("COMMIT")

    async def rollback(self) -> None:
        await self._end("ROLLBACK")
        if self._session is not None:
            await self._session.rollback()
            if self._connection is None:  # it was the session's: given back with it
                self._driver = None

    async def close(self) -> None:
        try:
            await self._end("ROLLBACK")
        finally:
            try:
                if self._session is not None:
                    await self._session.close()
            finally:
                connection = self._connection
                # Used again after this (a closed session may be), it takes a connection anew.
                self._connection = self._session = self._driver = None
                if connection is not None:
                    await connection.close()

    async def _end(self, ending: str) -> None:
        if self._begun:
            self._begun = False
            driver = cast(asyncpg.Connection, self._driver)
            await self.on_driver(ending, driver.execute(ending))


def _adapted(connection: Connection) -> AdaptedConnection:
    return cast(AdaptedConnection, connection.connection.dbapi_connection)


@event.listens_for(DriverSession, "after_begin", propagate=True)
def _hand_over(session: Session, _transaction: Any, connection: Connection) -> None:
    hold = session.info.get(_HOLD)
    if isinstance(hold, DriverHold):
        hold.taken(connection)


def end_abandoned_transaction(dbapi_connection: Any, _record: Any, _state: Any) -> None:
    """A connection goes back to the pool: a transaction nobody ended (a unit of work
    cancelled before its rollback went out) ends here, not in the next borrower's work."""
    adapted = cast(AdaptedConnection, dbapi_connection)
    if adapted.driver_connection.is_in_transaction():
        adapted.run_async(lambda driver: driver.execute("ROLLBACK"))
