"""A verification's send, as a job row: the first one (queued → sending → pending) or a re-send
of a pending one, which stays pending while a worker holds it. Every status it sets is the
lifecycle's (``VERIFICATION_LIFECYCLE``), built into SQL here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, func, or_, select, update
from sqlalchemy.sql import Executable

from shared.audit.models import Event
from shared.audit.repository import EVENT_VALUES, EventRepository, event_values
from shared.errors import AttemptError, ErrorCode
from shared.kit.db.repository import JobRows
from shared.kit.db.statements import (
    NO_ERROR,
    NOW,
    RELEASED,
    ROW_ID,
    When,
    appending,
    column_param,
    error_columns,
    prepared,
)
from shared.kit.db.transitions import completed_at_after, may_make, status_after
from shared.verifications.domain import VERIFICATION_LIFECYCLE as LIFECYCLE
from shared.verifications.domain import Channel, VerificationMove, VerificationStatus
from shared.verifications.models import Verification

Move = VerificationMove


def may(move: VerificationMove) -> ColumnElement[bool]:
    """Verifications ``move`` may start from (the lifecycle's table, in SQL)."""
    return may_make(Verification.status, LIFECYCLE, move)


def after(move: VerificationMove) -> ColumnElement[Any]:
    """The status ``move`` leaves a verification in (one value, or a CASE)."""
    return status_after(Verification.status, LIFECYCLE, move)


_TAKEN_OVER = AttemptError(
    ErrorCode.SUPERSEDED, "a newer verification to the same number took its place"
)


@dataclass(frozen=True, slots=True)
class SentCode:
    """The provider's verification a send made, by the channel it went, valid until then; or
    a passkey's ceremony (its factor's or challenge's SID, and its options for the browser),
    which there is nothing to cancel of at the provider."""

    provider_sid: str
    provider_service_sid: str
    channel: Channel
    expires_at: datetime
    passkey_options: str | None = None  # JSON

    @property
    def open_at_provider(self) -> bool:
        return self.passkey_options is None


class SendRows(JobRows[Verification]):
    """Claims, retries and outcomes of a verification's send."""

    model = Verification
    lifecycle = LIFECYCLE

    @classmethod
    def _claimable(cls, now: When) -> ColumnElement[bool]:
        # A pending verification has a job only while a re-send is asked for.
        v = Verification
        resend_or_first = or_(v.status != VerificationStatus.PENDING, v.resend_channel.is_not(None))
        return and_(super()._claimable(now), resend_or_first)

    @prepared
    def _take_over(cls) -> Executable:
        v = Verification
        return (
            update(v)
            .where(
                v.provider_sid == bindparam("held_sid", type_=v.__table__.c.provider_sid.type),
                may(Move.TAKE_OVER),
                v.id != ROW_ID,
            )
            .values(
                status=after(Move.TAKE_OVER),
                provider_open=False,  # the provider's verification is the new holder's now
                completed_at=NOW,
                updated_at=NOW,
                **error_columns(_TAKEN_OVER),
            )
            .returning(v.id)  # read by ``_recording_sent``, which so runs after it
        )

    @prepared
    def _record_sent(cls) -> Executable:
        v = Verification
        return (
            update(v)
            .where(cls._held(Move.SENT))
            .values(
                status=after(Move.SENT),
                provider_sid=column_param(v, "provider_sid"),
                provider_service_sid=column_param(v, "provider_service_sid"),
                provider_open=column_param(v, "provider_open"),
                passkey_options=column_param(v, "passkey_options"),
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
        )

    @prepared
    def _recording_sent(cls) -> Executable:
        taken_over = cls._take_over.cte("taken_over")  # type: ignore[attr-defined]  # an UPDATE
        # The send's UPDATE reads the take-over's rows, so it waits for them: the verification
        # that held the SID is no longer pending when this one takes it (a pending SID is
        # unique, ``ix_verifications_pending_provider_sid``). A count, not an EXISTS, which
        # could stop at the first row; without the read PostgreSQL leaves the order open.
        after_take_over = select(func.count()).select_from(taken_over).scalar_subquery() >= 0
        recording = cls._record_sent.where(after_take_over)  # type: ignore[attr-defined]
        return appending(recording, Event.__table__, EVENT_VALUES)  # type: ignore[arg-type]  # mapped classes have one

    async def record_sent(
        self,
        verification_id: uuid.UUID,
        token: uuid.UUID,
        sent: SentCode,
        now: datetime,
        sent_event: Event,
    ) -> Verification | None:
        """The provider took the send: the verification is pending and checkable, and
        ``sent_event`` recorded. Should the provider have answered with a verification another
        pending one holds (its number was sent to twice before either was superseded), this
        one takes it over. One statement where the database can (``_writes_in_with``)."""
        values: dict[str, object] = {
            "row_id": verification_id,
            "token": token,
            "held_sid": sent.provider_sid,
            "provider_sid": sent.provider_sid,
            "provider_service_sid": sent.provider_service_sid,
            "channel": sent.channel,
            "expires_at": sent.expires_at,
            "provider_open": sent.open_at_provider,
            "passkey_options": sent.passkey_options,
            "now": now,
        }
        if self._writes_in_with():
            recorded = self._recording_sent
            return await self._prepared_one(
                Verification, recorded, **values, **event_values(sent_event)
            )
        await self._prepared_count(
            self._take_over, row_id=verification_id, held_sid=sent.provider_sid, now=now
        )
        pending: Verification | None = await self._prepared_one(
            Verification, self._record_sent, **values
        )
        if pending is not None:
            await EventRepository(self._hold).append(sent_event)
        return pending

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
                may(move),
            )
            .values(
                status=after(move),
                completed_at=completed_at_after(Verification.status, LIFECYCLE, move, now),
                resend_channel=None,
                provider_call_started_at=None,
                updated_at=now,
                **error_columns(error),
                **RELEASED,
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
                may(Move.ASK_RESEND),
                Verification.resend_channel.is_(None),
            )
            .values(
                status=after(Move.ASK_RESEND),
                resend_channel=channel,
                deadline_at=deadline,
                next_attempt_at=next_look,
                enqueue_count=Verification.enqueue_count + 1,
                provider_attempts=0,
                updated_at=now,
            ),
            Verification,
        )

    async def drop_late_resends(self, now: datetime) -> int:
        """A re-send nobody managed before its deadline is dropped; the first code still works."""
        return await self._write(
            update(Verification)
            .where(
                may(Move.DROP_RESEND),
                Verification.resend_channel.is_not(None),
                Verification.deadline_at <= now,
                self._unclaimed_or_stale(now),
            )
            .values(status=after(Move.DROP_RESEND), resend_channel=None, updated_at=now, **RELEASED)
        )
