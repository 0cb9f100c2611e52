"""A verification's rows: its lifecycle past the send (``send_rows``), as named compare-and-set
operations built from the lifecycle's table."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    ColumnElement,
    Interval,
    Table,
    and_,
    bindparam,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import ReturningUpdate

from shared.audit.models import Event
from shared.audit.repository import EVENT_VALUES, EventRepository, event_values
from shared.errors import AttemptError
from shared.kit.db.statements import (
    ERROR,
    NOW,
    RELEASED,
    ROW_ID,
    appending,
    column_param,
    error_columns,
    joined,
    prepared,
    row_values,
    values_of,
)
from shared.kit.db.transitions import one_of
from shared.verifications.domain import (
    OPEN_VERIFICATION_STATUSES,
    VerificationMove,
    VerificationStatus,
)
from shared.verifications.models import Verification, VerificationCheck
from shared.verifications.send_rows import Move, SendRows, after, may


class VerificationRepository(SendRows):
    """A verification's rows: its send (``SendRows``), its checks' count, its end (approved,
    used up, expired, canceled, superseded), and what the sweeper and retention read."""

    @prepared
    def _insert_recorded(cls) -> Executable:
        table: Table = Verification.__table__  # type: ignore[assignment]  # mapped classes have one
        written = insert(table).values(values_of(table)).returning(table.c.id)
        return appending(written, Event.__table__, EVENT_VALUES)  # type: ignore[arg-type]  # mapped classes have one

    async def insert_recorded(self, verification: Verification, requested: Event) -> None:
        """Insert a new verification and the event of its request: one statement where the
        database can (``_writes_in_with``), so on PostgreSQL no transaction around them."""
        if not self._writes_in_with():
            await self.insert(verification)
            await EventRepository(self._hold).append(requested)
            return
        await self._run_prepared(
            self._insert_recorded, **row_values(verification), **event_values(requested)
        )

    async def cancel(
        self, tenant_id: uuid.UUID, verification_id: uuid.UUID, now: datetime
    ) -> Verification | None:
        """End a verification of the tenant's that is not over yet."""
        return await self._update_one(
            update(Verification)
            .where(
                Verification.id == verification_id,
                Verification.tenant_id == tenant_id,
                may(Move.CANCEL),
            )
            .values(
                status=after(Move.CANCEL),
                resend_channel=None,
                completed_at=now,
                updated_at=now,
            ),
            Verification,
        )

    @prepared
    def _take_check_attempt(cls) -> Executable:
        v = Verification
        return (
            update(v)
            .where(
                v.id == ROW_ID,
                may(Move.COUNT_CHECK),
                v.check_attempts < bindparam("max_attempts"),
            )
            .values(
                status=after(Move.COUNT_CHECK),
                check_attempts=v.check_attempts + 1,
                updated_at=NOW,
            )
            .returning(v.id)  # for the check inserted with it (``insert_taking_attempt``)
        )

    async def take_check_attempt(
        self, verification_id: uuid.UUID, max_attempts: int, now: datetime
    ) -> bool:
        """Count one more check against a pending verification, atomically, within the cap."""
        taken = await self._run_prepared(
            self._take_check_attempt, row_id=verification_id, max_attempts=max_attempts, now=now
        )
        return len(taken) == 1

    async def give_back_check_attempt(self, verification_id: uuid.UUID, now: datetime) -> bool:
        """A check the provider never saw does not count."""
        return (
            await self._write(
                update(Verification)
                .where(
                    Verification.id == verification_id,
                    may(Move.COUNT_CHECK),
                    Verification.check_attempts > 0,
                )
                .values(
                    status=after(Move.COUNT_CHECK),
                    check_attempts=Verification.check_attempts - 1,
                    updated_at=now,
                )
            )
            == 1
        )

    async def approve(self, verification_id: uuid.UUID, now: datetime) -> Verification | None:
        """Approved: the provider deleted it as it approved it."""
        return await self.end_pending(verification_id, Move.APPROVE, None, now, provider_open=False)

    async def end_pending(
        self,
        verification_id: uuid.UUID,
        move: VerificationMove,
        error: AttemptError | None,
        now: datetime,
        *,
        provider_open: bool,
    ) -> Verification | None:
        """End a pending verification by ``move`` (approved, used up, expired);
        ``provider_open``: whether the provider may still hold it open."""
        ended: Verification | None = await self._prepared_one(
            Verification,
            self._ending[move],
            row_id=verification_id,
            provider_open=provider_open,
            now=now,
            **error_columns(error),
        )
        return ended

    @prepared
    def _ending(cls) -> dict[VerificationMove, Executable]:
        return {
            move: cls.ending_of(move, ROW_ID) for move in (Move.APPROVE, Move.USE_UP, Move.EXPIRE)
        }

    @staticmethod
    def ending_of(
        move: VerificationMove, verification_id: ColumnElement[Any]
    ) -> ReturningUpdate[tuple[Verification]]:
        """The UPDATE that ends a pending verification by ``move`` (``end_pending``)."""
        v = Verification
        return (
            update(v)
            .where(v.id == verification_id, may(move))
            .values(
                status=after(move),
                provider_open=column_param(v, "provider_open"),
                resend_channel=None,
                completed_at=NOW,
                updated_at=NOW,
                **ERROR,
            )
            .returning(v)
        )

    @prepared
    def _claim_with_others(cls) -> Executable:
        claimed = cls._claim.cte("claimed")  # type: ignore[attr-defined]  # an UPDATE … RETURNING
        others = Verification.__table__.alias("others")
        lookback = bindparam("lookback", type_=Interval())
        return (
            select(claimed, others)
            .select_from(
                claimed.outerjoin(
                    others,
                    and_(
                        others.c.tenant_id == claimed.c.tenant_id,
                        others.c.destination_lookup == claimed.c.destination_lookup,
                        others.c.id != claimed.c.id,
                        others.c.created_at >= claimed.c.created_at - lookback,
                        or_(
                            one_of(others.c.status, OPEN_VERIFICATION_STATUSES),
                            others.c.provider_open.is_(True),
                        ),
                    ),
                )
            )
            .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
        )

    async def claim_with_others(
        self, verification_id: uuid.UUID, *, now: datetime, until: datetime, lookback: timedelta
    ) -> tuple[Verification, Sequence[Verification]] | None:
        """Claim the verification's send (as ``claim``) and read the tenant's others to the
        same number (as ``others_to_destination``, made at most ``lookback`` before it): in one
        statement where the database can (``_writes_in_with``)."""
        if not self._writes_in_with():
            claimed = await self.claim(verification_id, now=now, until=until)
            if claimed is None:
                return None
            since = claimed.created_at - lookback
            return claimed, await self.others_to_destination(claimed, since=since)
        rows = await self._claiming(
            self._claim_with_others, row_id=verification_id, now=now, until=until, lookback=lookback
        )
        if not rows:
            return None
        others = [
            joined(row, "others", Verification) for row in rows if row["others_id"] is not None
        ]
        return joined(rows[0], "claimed", Verification), others

    async def others_to_destination(
        self, verification: Verification, *, since: datetime
    ) -> Sequence[Verification]:
        """The tenant's other verifications to the same number made since ``since``: those not
        over here, and those the provider may still hold open. None for a verification made
        before numbers had a look-up key: nothing says which are to its number."""
        if verification.destination_lookup is None:
            return []
        v = Verification
        return await self._entities(
            v,
            select(v).where(
                v.tenant_id == verification.tenant_id,
                v.destination_lookup == verification.destination_lookup,
                v.id != verification.id,
                v.created_at >= since,
                or_(v.status.in_(OPEN_VERIFICATION_STATUSES), v.provider_open.is_(True)),
            ),
        )

    async def supersede(
        self, verification_ids: Sequence[uuid.UUID], error: AttemptError, now: datetime
    ) -> list[Verification]:
        """End verifications a newer one to their number takes the place of; returns those it
        ended. The caller waits out calls in flight first (``Wait``); should a worker claim one
        meanwhile, its outcome no longer lands here, and the newer send, answered with the
        provider's verification that call made, takes it over (``record_sent``)."""
        v = Verification
        return await self._entities(
            v,
            update(v)
            .where(v.id.in_(verification_ids), may(Move.SUPERSEDE))
            .values(
                status=after(Move.SUPERSEDE),
                resend_channel=None,
                completed_at=now,
                updated_at=now,
                **error_columns(error),
                **RELEASED,
            )
            .returning(v),
        )

    async def provider_closed(self, verification_ids: Sequence[uuid.UUID]) -> None:
        """The provider holds these no longer (canceled there, or over by its own clock)."""
        await self._write(
            update(Verification)
            .where(Verification.id.in_(verification_ids))
            .values(provider_open=False)
        )

    async def set_destination(self, verification_id: uuid.UUID, destination: str) -> None:
        """An app's verification learns its factor's SID, made at its first code."""
        await self._write(
            update(Verification)
            .where(Verification.id == verification_id)
            .values(destination=destination)
        )

    async def pending_with_sid(self, provider_sid: str) -> Verification | None:
        return await self._prepared_one(
            Verification,
            select(Verification).where(
                Verification.provider_sid == provider_sid,
                Verification.status == VerificationStatus.PENDING,
            ),
        )

    async def expire_pending(self, now: datetime) -> list[Verification]:
        return await self._entities(
            Verification,
            update(Verification)
            .where(may(Move.EXPIRE), Verification.expires_at <= now)
            .values(
                status=after(Move.EXPIRE),
                resend_channel=None,
                completed_at=now,
                updated_at=now,
            )
            .returning(Verification),
        )

    async def oldest_not_final(
        self,
    ) -> tuple[tuple[uuid.UUID, datetime] | None, tuple[uuid.UUID, datetime] | None]:
        """The oldest verification still being sent (queued, sending), and the oldest pending."""

        async def oldest(*statuses: VerificationStatus) -> tuple[uuid.UUID, datetime] | None:
            row = (
                await self.session.execute(
                    select(Verification.id, Verification.created_at)
                    .where(Verification.status.in_(statuses))
                    .order_by(Verification.created_at)
                    .limit(1)
                )
            ).first()
            return (row[0], row[1]) if row else None

        in_flight = await oldest(VerificationStatus.QUEUED, VerificationStatus.SENDING)
        return in_flight, await oldest(VerificationStatus.PENDING)

    async def created_before(self, cutoff: datetime, limit: int) -> list[uuid.UUID]:
        """Retention: the oldest verifications made before ``cutoff`` (long over by then: every
        deadline and code lifetime is far shorter than any retention period)."""
        found = await self.session.scalars(
            select(Verification.id)
            .where(Verification.created_at < cutoff)
            .order_by(Verification.created_at)
            .limit(limit)
        )
        return list(found.all())

    async def delete(self, verification_ids: Sequence[uuid.UUID]) -> int:
        """Delete verifications and, with them, their checks."""
        await self._write(
            delete(VerificationCheck).where(VerificationCheck.verification_id.in_(verification_ids))
        )
        return await self._write(delete(Verification).where(Verification.id.in_(verification_ids)))
