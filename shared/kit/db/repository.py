"""What every repository shares: running its statements (``statements``: prepared ones on the
driver where there is one), and the claims, retries and sweeps of job rows (a send, a check, a
webhook delivery).

State changes that race (claims, outcomes, expiry) are single compare-and-set UPDATEs, so they
are atomic on PostgreSQL and SQLite alike. One data-access layer for the API and the workers:
both run these on SQLAlchemy's asyncio extension.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Delete, Update

from shared.errors import AttemptError
from shared.kit.db.base import JobRow, UTCDateTime
from shared.kit.db.driver import Rows
from shared.kit.db.holds import Hold
from shared.kit.db.statements import (
    ERROR,
    NOW,
    RELEASED,
    ROW_ID,
    TENANT_ID,
    TOKEN,
    UNTIL,
    When,
    compilations_of,
    entity,
    error_columns,
    prepared,
    row_values,
    values_of,
)
from shared.kit.db.transitions import may_make, status_after
from shared.kit.lifecycle import JobMove, Lifecycle

Claimable = TypeVar("Claimable", bound=JobRow)
T = TypeVar("T")


class Repository:
    """Statements run as SQLAlchemy Core on the unit of work's connection — prepared ones, on
    PostgreSQL, on its driver connection: the ORM's execution (its bulk UPDATE machinery,
    loading into the identity map) costs more CPU than the statement's round trip, and the rows
    these repositories hand out are read, never changed and flushed. Their entities are built
    from the returned columns."""

    def __init__(self, hold: Hold) -> None:
        self._hold = hold

    @property
    def session(self) -> AsyncSession:
        """The ORM session, for the statements that are not prepared."""
        return self._hold.session

    async def _execute(self, statement: Executable, values: dict[str, Any] | None = None) -> Any:
        connection = await self.session.connection()
        return await connection.execute(statement, values)

    async def _write(self, statement: Update | Delete) -> int:
        """Run an UPDATE or DELETE; returns how many rows it changed."""
        return int((await self._execute(statement)).rowcount)

    async def _write_returning(self, statement: Update) -> Sequence[Any]:
        rows: Sequence[Any] = (await self._execute(statement)).all()
        return rows

    async def _entities(self, model: type[T], statement: Executable, **values: Any) -> list[T]:
        """Every row of ``model`` a statement returns (all its columns)."""
        return [entity(model, row) for row in await self._run_prepared(statement, **values)]

    async def _update_one(self, statement: Update, model: type[T]) -> T | None:
        """Run an UPDATE of at most one row; returns the row as it is now, or None if it
        matched nothing."""
        return await self._prepared_one(model, statement.returning(model))

    async def _run_prepared(self, statement: Executable, **values: Any) -> Rows:
        """Run a statement with its parameters' values; returns its rows. A ``prepared`` one
        runs on the driver where there is one (PostgreSQL)."""
        compilations = compilations_of(statement)
        driver = await self._hold.driver() if compilations is not None else None
        if compilations is None or driver is None:
            # SQLite, or built for this call (SQLAlchemy caches its compilation).
            return Rows.of(await self._execute(statement, values))
        compiled = compilations.for_dialect(self._hold.dialect)
        return await self._hold.on_driver(compiled.sql, compiled.run(driver, values))

    async def _prepared_one(self, model: type[T], statement: Executable, **values: Any) -> T | None:
        """The one row of ``model`` a statement returns (all its columns), or None."""
        row = (await self._run_prepared(statement, **values)).first()
        return None if row is None else entity(model, row)

    async def _prepared_count(self, statement: Executable, **values: Any) -> int:
        return (await self._run_prepared(statement, **values)).rowcount

    def _writes_in_with(self) -> bool:
        """Whether a write and what goes with it (a read, another write) can be one statement,
        the write in a WITH: on PostgreSQL; SQLite's WITH takes no INSERT or UPDATE."""
        return self._hold.dialect.name == "postgresql"


class JobRows(Repository, Generic[Claimable]):
    """Claims, retries and the sweeper's operations, shared by the three kinds of job rows
    (a send, a check, a webhook delivery)."""

    model: type[Claimable]
    # Where the row's claim, release and time-out may start and what they leave it in.
    lifecycle: ClassVar[Lifecycle[Any]]

    @prepared
    def _insert(cls) -> Executable:
        table: Table = cls.model.__table__  # type: ignore[assignment]  # mapped classes have one
        return insert(table).values(values_of(table))

    async def insert(self, row: Claimable) -> None:
        """Insert a new row, as a plain statement: no session bookkeeping for it."""
        await self._run_prepared(self._insert, **row_values(row))

    @prepared
    def _by_id(cls) -> Executable:
        return select(cls.model).where(cls.model.id == ROW_ID)

    async def get(self, row_id: uuid.UUID) -> Claimable | None:
        """Any tenant's row: for the workers and the sweeper, which act on ids they were given."""
        found: Claimable | None = await self._prepared_one(self.model, self._by_id, row_id=row_id)
        return found

    @prepared
    def _of_tenant(cls) -> Executable:
        m = cls.model
        return select(m).where(m.id == ROW_ID, m.tenant_id == TENANT_ID)

    async def get_of_tenant(self, tenant_id: uuid.UUID, row_id: uuid.UUID) -> Claimable | None:
        """The row only if it is this tenant's: another tenant's id is simply not found."""
        found: Claimable | None = await self._prepared_one(
            self.model, self._of_tenant, row_id=row_id, tenant_id=tenant_id
        )
        return found

    @classmethod
    def _unclaimed_or_stale(cls, now: When) -> ColumnElement[bool]:
        m = cls.model
        return or_(m.claimed_until.is_(None), m.claimed_until <= now)

    @classmethod
    def _claimable(cls, now: When) -> ColumnElement[bool]:
        """Rows a worker may claim now: where a claim may start, and nobody holds them."""
        return and_(
            may_make(cls.model.status, cls.lifecycle, JobMove.CLAIM), cls._unclaimed_or_stale(now)
        )

    @classmethod
    def _held(cls, move: StrEnum = JobMove.RELEASE) -> ColumnElement[bool]:
        """The row of a prepared statement's ``row_id``, while ``token`` still holds it, if
        ``move`` may start where it is."""
        m = cls.model
        return and_(m.id == ROW_ID, m.claim_token == TOKEN, may_make(m.status, cls.lifecycle, move))

    @prepared
    def _claim(cls) -> Executable:
        m = cls.model
        return (
            update(m)
            .where(m.id == ROW_ID, cls._claimable(NOW))
            .values(
                status=status_after(m.status, cls.lifecycle, JobMove.CLAIM),
                claimed_until=UNTIL,
                claim_token=TOKEN,
                provider_attempts=m.provider_attempts + 1,
                provider_call_started_at=func.coalesce(m.provider_call_started_at, NOW),
                next_attempt_at=UNTIL,
                updated_at=NOW,
            )
            .returning(m)
        )

    async def _claiming(self, statement: Executable, **values: Any) -> Rows:
        """The rows of a statement built around ``_claim`` (in a WITH), with a new claim."""
        return await self._run_prepared(statement, token=uuid.uuid4(), **values)

    async def claim(self, row_id: uuid.UUID, *, now: datetime, until: datetime) -> Claimable | None:
        """Take the row for one attempt and mark a provider call as started, in one statement.

        Returns the row as claimed (its ``claim_token`` is the claim), or None if another worker
        holds it or it needs no more work. A call marker older than ``now`` on the returned row
        was left by an earlier call whose answer was lost. The lease's end doubles as the
        sweeper's next look.
        """
        claimed: Claimable | None = await self._prepared_one(
            self.model, self._claim, row_id=row_id, now=now, until=until, token=uuid.uuid4()
        )
        return claimed

    @prepared
    def _release_for_retry(cls) -> Executable:
        m = cls.model
        return (
            update(m)
            .where(cls._held())
            .values(
                status=status_after(m.status, cls.lifecycle, JobMove.RELEASE),
                provider_call_started_at=bindparam("lost_call_at", type_=UTCDateTime()),
                next_attempt_at=bindparam("next_look", type_=UTCDateTime()),
                updated_at=NOW,
                **ERROR,
                **RELEASED,
            )
        )

    async def release_for_retry(
        self,
        row_id: uuid.UUID,
        token: uuid.UUID,
        *,
        error: AttemptError,
        lost_call_at: datetime | None,
        next_look: datetime,
        now: datetime,
    ) -> bool:
        """Put a claimed row back to wait for its retry. ``lost_call_at`` keeps the marker of a
        call whose answer was lost, so the retry looks before it acts again."""
        changed = await self._prepared_count(
            self._release_for_retry,
            row_id=row_id,
            token=token,
            lost_call_at=lost_call_at,
            next_look=next_look,
            now=now,
            **error_columns(error),
        )
        return changed == 1

    async def release_unattempted(
        self,
        row_id: uuid.UUID,
        token: uuid.UUID,
        *,
        lost_call_at: datetime | None,
        next_look: datetime,
        now: datetime,
    ) -> bool:
        """Put a claimed row back without counting the attempt: no provider call was made."""
        m, lifecycle = self.model, self.lifecycle
        return (
            await self._write(
                update(m)
                .where(
                    m.id == row_id,
                    m.claim_token == token,
                    may_make(m.status, lifecycle, JobMove.RELEASE),
                )
                .values(
                    status=status_after(m.status, lifecycle, JobMove.RELEASE),
                    provider_attempts=case(
                        (m.provider_attempts > 0, m.provider_attempts - 1), else_=0
                    ),
                    provider_call_started_at=lost_call_at,
                    next_attempt_at=next_look,
                    updated_at=now,
                    **RELEASED,
                )
            )
            == 1
        )

    async def take_due_for_republish(
        self, now: datetime, *, next_look: datetime, limit: int
    ) -> list[tuple[uuid.UUID, int]]:
        """Rows whose job looks lost: waiting past their next look, or held by a dead claim.

        Moves each row's next look to ``next_look`` in the same statement that picks it, so two
        sweepers running at once split the rows between them instead of both publishing them.
        Returns (id, times published so far) for each row taken.
        """
        m = self.model
        candidates = (
            (
                await self._execute(
                    select(m.id)
                    .where(m.next_attempt_at <= now, self._claimable(now))
                    .order_by(m.next_attempt_at)
                    .limit(limit)
                )
            )
            .scalars()
            .all()
        )
        if not candidates:
            return []
        taken = await self._write_returning(
            update(m)
            .where(m.id.in_(candidates), m.next_attempt_at <= now, self._claimable(now))
            .values(enqueue_count=m.enqueue_count + 1, next_attempt_at=next_look)
            .returning(m.id, m.enqueue_count)
        )
        return [(row_id, count) for row_id, count in taken]

    async def postpone_next_look(self, row_id: uuid.UUID, at: datetime) -> None:
        await self._write(
            update(self.model).where(self.model.id == row_id).values(next_attempt_at=at)
        )

    async def fail_past_deadline(self, now: datetime, error: AttemptError) -> list[Claimable]:
        """Give up on rows nobody is working on whose deadline has passed; returns them."""
        m, lifecycle = self.model, self.lifecycle
        return await self._entities(
            m,
            update(m)
            .where(
                m.deadline_at <= now,
                may_make(m.status, lifecycle, JobMove.TIME_OUT),
                self._unclaimed_or_stale(now),
            )
            .values(
                status=status_after(m.status, lifecycle, JobMove.TIME_OUT),
                completed_at=now,
                updated_at=now,
                **error_columns(error),
                **RELEASED,
            )
            .returning(m),
        )
