"""A verification's rows: its send (a job row) and its lifecycle, as named compare-and-set
operations."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.sql import Executable

from shared.errors import AttemptError, ErrorCode
from shared.kit.db.repository import (
    ERROR,
    NO_ERROR,
    NOW,
    RELEASED,
    ROW_ID,
    JobRows,
    When,
    column_param,
    error_columns,
    prepared,
)
from shared.kit.db.transitions import completed_at_after, may_make, status_after
from shared.verifications.domain import (
    OPEN_VERIFICATION_STATUSES,
    Channel,
    VerificationMove,
    VerificationStatus,
)
from shared.verifications.domain import (
    VERIFICATION_LIFECYCLE as LIFECYCLE,
)
from shared.verifications.models import Verification, VerificationCheck

Move = VerificationMove


def _may(move: VerificationMove) -> ColumnElement[bool]:
    """Verifications ``move`` may start from (the lifecycle's table, in SQL)."""
    return may_make(Verification.status, LIFECYCLE, move)


def _after(move: VerificationMove) -> ColumnElement[Any]:
    return status_after(Verification.status, LIFECYCLE, move)


_TAKEN_OVER = AttemptError(
    ErrorCode.SUPERSEDED, "a newer verification to the same number took its place"
)


class VerificationRepository(JobRows[Verification]):
    """A verification's job is its send: the first one (queued → sending → pending) or a
    re-send of a pending one, which stays pending while a worker holds it."""

    model = Verification
    lifecycle = LIFECYCLE

    @classmethod
    def _claimable(cls, now: When) -> ColumnElement[bool]:
        # A pending verification has a job only while a re-send is asked for.
        v = Verification
        resend_or_first = or_(v.status != VerificationStatus.PENDING, v.resend_channel.is_not(None))
        return and_(super()._claimable(now), resend_or_first)

    @prepared
    def _record_sent(cls) -> Executable:
        v = Verification
        return (
            update(v)
            .where(cls._held(Move.SENT))
            .values(
                status=_after(Move.SENT),
                provider_sid=column_param(v, "provider_sid"),
                provider_service_sid=column_param(v, "provider_service_sid"),
                provider_open=True,
                channel=column_param(v, "channel"),
                resend_channel=None,
                send_attempts=v.send_attempts + 1,
                expires_at=column_param(v, "expires_at"),
                provider_call_started_at=None,
                updated_at=NOW,
                **NO_ERROR,
                **RELEASED,
            )
            .returning(v)
            .execution_options(populate_existing=True)
        )

    async def record_sent(
        self,
        verification_id: uuid.UUID,
        token: uuid.UUID,
        *,
        provider_sid: str,
        provider_service_sid: str,
        channel: Channel,
        expires_at: datetime,
        now: datetime,
    ) -> Verification | None:
        """The provider took the send: the verification is pending and checkable. Should the
        provider have answered with a verification another pending one holds (its number was
        sent to twice before either was superseded), this one takes it over."""
        await self._write(
            update(Verification)
            .where(
                Verification.provider_sid == provider_sid,
                _may(Move.TAKE_OVER),
                Verification.id != verification_id,
            )
            .values(
                status=_after(Move.TAKE_OVER),
                provider_open=False,  # the provider's verification is the new holder's now
                completed_at=now,
                updated_at=now,
                **error_columns(_TAKEN_OVER),
            )
        )
        sent: Verification | None = await self._prepared_one(
            self._record_sent,
            row_id=verification_id,
            token=token,
            provider_sid=provider_sid,
            provider_service_sid=provider_service_sid,
            channel=channel,
            expires_at=expires_at,
            now=now,
        )
        return sent

    async def give_up_send(
        self,
        verification_id: uuid.UUID,
        token: uuid.UUID,
        *,
        error: AttemptError,
        now: datetime,
        superseded: bool = False,
    ) -> Verification | None:
        """A first send that cannot be made fails the verification; a re-send that cannot be
        made is dropped, and the code sent first still works — unless the verification was
        superseded, which ends it (canceled) either way."""
        move = Move.SUPERSEDE if superseded else Move.GIVE_UP_SEND
        return await self._update_one(
            update(Verification)
            .where(
                Verification.id == verification_id,
                Verification.claim_token == token,
                _may(move),
            )
            .values(
                status=_after(move),
                completed_at=completed_at_after(Verification.status, LIFECYCLE, move, now),
                resend_channel=None,
                provider_call_started_at=None,
                updated_at=now,
                **error_columns(error),
                **RELEASED,
            ),
            Verification,
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
                _may(Move.CANCEL),
            )
            .values(
                status=_after(Move.CANCEL),
                resend_channel=None,
                completed_at=now,
                updated_at=now,
            ),
            Verification,
        )

    async def request_resend(
        self,
        verification_id: uuid.UUID,
        channel: Channel,
        *,
        now: datetime,
        deadline: datetime,
        next_look: datetime,
    ) -> Verification | None:
        return await self._update_one(
            update(Verification)
            .where(
                Verification.id == verification_id,
                _may(Move.ASK_RESEND),
                Verification.resend_channel.is_(None),
            )
            .values(
                status=_after(Move.ASK_RESEND),
                resend_channel=channel,
                deadline_at=deadline,
                next_attempt_at=next_look,
                enqueue_count=Verification.enqueue_count + 1,
                provider_attempts=0,
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
                _may(Move.COUNT_CHECK),
                v.check_attempts < bindparam("max_attempts"),
            )
            .values(
                status=_after(Move.COUNT_CHECK),
                check_attempts=v.check_attempts + 1,
                updated_at=NOW,
            )
        )

    async def take_check_attempt(
        self, verification_id: uuid.UUID, max_attempts: int, now: datetime
    ) -> bool:
        """Count one more check against a pending verification, atomically, within the cap."""
        taken = await self._prepared_count(
            self._take_check_attempt, row_id=verification_id, max_attempts=max_attempts, now=now
        )
        return taken == 1

    async def give_back_check_attempt(self, verification_id: uuid.UUID, now: datetime) -> bool:
        """A check the provider never saw does not count."""
        return (
            await self._write(
                update(Verification)
                .where(
                    Verification.id == verification_id,
                    _may(Move.COUNT_CHECK),
                    Verification.check_attempts > 0,
                )
                .values(
                    status=_after(Move.COUNT_CHECK),
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
            self._ending[move],
            row_id=verification_id,
            provider_open=provider_open,
            now=now,
            **error_columns(error),
        )
        return ended

    @prepared
    def _ending(cls) -> dict[VerificationMove, Executable]:
        v = Verification
        return {
            move: update(v)
            .where(v.id == ROW_ID, _may(move))
            .values(
                status=_after(move),
                provider_open=column_param(v, "provider_open"),
                resend_channel=None,
                completed_at=NOW,
                updated_at=NOW,
                **ERROR,
            )
            .returning(v)
            .execution_options(populate_existing=True)
            for move in (Move.APPROVE, Move.USE_UP, Move.EXPIRE)
        }

    async def others_to_destination(
        self, verification: Verification, *, since: datetime
    ) -> Sequence[Verification]:
        """The tenant's other verifications to the same number made since ``since``: those not
        over here, and those the provider may still hold open."""
        v = Verification
        return (
            await self.session.scalars(
                select(v).where(
                    v.tenant_id == verification.tenant_id,
                    v.destination_lookup == verification.destination_lookup,
                    v.id != verification.id,
                    v.created_at >= since,
                    or_(v.status.in_(OPEN_VERIFICATION_STATUSES), v.provider_open.is_(True)),
                )
            )
        ).all()

    async def supersede(
        self, verification_ids: Sequence[uuid.UUID], error: AttemptError, now: datetime
    ) -> list[Verification]:
        """End verifications a newer one to their number takes the place of; returns those it
        ended (one being sent is left to its worker)."""
        v = Verification
        ended = await self._write_returning(
            update(v)
            .where(v.id.in_(verification_ids), _may(Move.SUPERSEDE))
            .values(
                status=_after(Move.SUPERSEDE),
                resend_channel=None,
                completed_at=now,
                updated_at=now,
                **error_columns(error),
                **RELEASED,
            )
            .returning(v)
            .execution_options(populate_existing=True)
        )
        return [row for (row,) in ended]

    async def provider_closed(self, verification_ids: Sequence[uuid.UUID]) -> None:
        """The provider holds these no longer (canceled there, or over by its own clock)."""
        await self._write(
            update(Verification)
            .where(Verification.id.in_(verification_ids))
            .values(provider_open=False)
        )

    async def pending_with_sid(self, provider_sid: str) -> Verification | None:
        return await self.session.scalar(
            select(Verification).where(
                Verification.provider_sid == provider_sid,
                Verification.status == VerificationStatus.PENDING,
            )
        )

    async def expire_pending(self, now: datetime) -> list[Verification]:
        expired = await self._write_returning(
            update(Verification)
            .where(_may(Move.EXPIRE), Verification.expires_at <= now)
            .values(
                status=_after(Move.EXPIRE),
                resend_channel=None,
                completed_at=now,
                updated_at=now,
            )
            .returning(Verification)
            .execution_options(populate_existing=True)
        )
        return [row for (row,) in expired]

    async def drop_late_resends(self, now: datetime) -> int:
        """A re-send nobody managed before its deadline is dropped; the first code still works."""
        return await self._write(
            update(Verification)
            .where(
                _may(Move.DROP_RESEND),
                Verification.resend_channel.is_not(None),
                Verification.deadline_at <= now,
                self._unclaimed_or_stale(now),
            )
            .values(
                status=_after(Move.DROP_RESEND), resend_channel=None, updated_at=now, **RELEASED
            )
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
