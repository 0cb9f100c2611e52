"""Every query lives here. State changes that race (claims, outcomes, expiry) are single
compare-and-set UPDATEs, so they are atomic on PostgreSQL and SQLite alike."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, and_, case, delete, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session

from shared.db.models import (
    ApiKey,
    Event,
    Factor,
    IdempotencyRecord,
    RecoveryCode,
    Verification,
    VerificationCheck,
)
from shared.domain import Channel, CheckStatus, FactorStatus, VerificationStatus

Claimable = TypeVar("Claimable", Verification, VerificationCheck)


class ApiKeyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, key: ApiKey) -> None:
        self.session.add(key)

    def get_active_by_hash(self, key_hash: str) -> ApiKey | None:
        return self.session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )

    def get_by_name(self, name: str) -> ApiKey | None:
        return self.session.scalar(select(ApiKey).where(ApiKey.name == name))

    def list_all(self) -> Sequence[ApiKey]:
        return self.session.scalars(select(ApiKey).order_by(ApiKey.created_at)).all()


class IdempotencyRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, api_key_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
        return self.session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == key
            )
        )

    def add(self, record: IdempotencyRecord) -> None:
        self.session.add(record)

    def delete_expired(
        self, now: datetime, *, api_key_id: uuid.UUID | None = None, key: str | None = None
    ) -> int:
        statement = delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
        if api_key_id is not None and key is not None:
            statement = statement.where(
                IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == key
            )
        result = self.session.execute(statement, execution_options={"synchronize_session": False})
        assert isinstance(result, CursorResult)
        return result.rowcount


class _ClaimableRepository(Generic[Claimable]):
    """Claims and outcomes shared by the two kinds of job rows (send and check)."""

    model: type[Claimable]
    waiting_status: VerificationStatus | CheckStatus
    # The status a claimed row shows while a worker holds it (checks keep "queued").
    claimed_status: VerificationStatus | CheckStatus
    failed_status: VerificationStatus | CheckStatus

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, row: Claimable) -> None:
        self.session.add(row)

    def get(self, row_id: uuid.UUID) -> Claimable | None:
        return self.session.get(self.model, row_id, populate_existing=True)

    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        """Rows a worker may claim now."""
        return self._waiting_or_abandoned(now)

    def _waiting_or_abandoned(self, now: datetime) -> ColumnElement[bool]:
        """Rows waiting for their first outcome, or held by a claim that went stale."""
        m = self.model
        unclaimed_or_stale = or_(m.claimed_until.is_(None), m.claimed_until <= now)
        if self.claimed_status == self.waiting_status:
            return and_(m.status == self.waiting_status, unclaimed_or_stale)
        return or_(
            m.status == self.waiting_status,
            and_(m.status == self.claimed_status, unclaimed_or_stale),
        )

    def _claimed_status(self) -> Any:
        return self.claimed_status

    def claim(self, row_id: uuid.UUID, *, now: datetime, until: datetime) -> uuid.UUID | None:
        """Take the row for one attempt. Returns the claim token, or None if another worker holds
        it or it needs no more work. The lease's end doubles as the sweeper's next look."""
        token = uuid.uuid4()
        m = self.model
        result = self._execute(
            update(m)
            .where(m.id == row_id, self._claimable(now))
            .values(
                status=self._claimed_status(),
                claimed_until=until,
                claim_token=token,
                provider_attempts=m.provider_attempts + 1,
                next_attempt_at=until,
                updated_at=now,
            )
        )
        return token if result.rowcount == 1 else None

    def settle(
        self,
        row_id: uuid.UUID,
        token: uuid.UUID,
        *,
        only_if: VerificationStatus | CheckStatus | None = None,
        **values: Any,
    ) -> bool:
        """Write an attempt's outcome and release the claim, if the claim is still ours (and,
        with ``only_if``, nobody moved the row to another status meanwhile, e.g. canceled)."""
        m = self.model
        values.setdefault("claimed_until", None)
        values.setdefault("claim_token", None)
        statement = update(m).where(m.id == row_id, m.claim_token == token)
        if only_if is not None:
            statement = statement.where(m.status == only_if)
        result = self._execute(statement.values(**values))
        return result.rowcount == 1

    def mark_call_started(self, row_id: uuid.UUID, token: uuid.UUID, at: datetime) -> bool:
        m = self.model
        result = self._execute(
            update(m)
            .where(m.id == row_id, m.claim_token == token)
            .values(provider_call_started_at=at)
        )
        return result.rowcount == 1

    def take_due_for_republish(
        self, now: datetime, *, next_look: datetime, limit: int
    ) -> list[tuple[uuid.UUID, int]]:
        """Rows whose job looks lost: waiting past their next look, or held by a dead claim.

        Moves each row's next look to ``next_look`` in the same statement that picks it, so two
        sweepers running at once split the rows between them instead of both publishing them.
        Returns (id, times published so far) for each row taken.
        """
        m = self.model
        candidates = self.session.scalars(
            select(m.id)
            .where(m.next_attempt_at <= now, self._claimable(now))
            .order_by(m.next_attempt_at)
            .limit(limit)
        ).all()
        if not candidates:
            return []
        taken = self.session.execute(
            update(m)
            .where(m.id.in_(candidates), m.next_attempt_at <= now, self._claimable(now))
            .values(enqueue_count=m.enqueue_count + 1, next_attempt_at=next_look)
            .returning(m.id, m.enqueue_count),
            execution_options={"synchronize_session": False},
        ).all()
        return [(row_id, count) for row_id, count in taken]

    def set_next_attempt(self, row_id: uuid.UUID, at: datetime) -> None:
        m = self.model
        self._execute(update(m).where(m.id == row_id).values(next_attempt_at=at))

    def fail_past_deadline(
        self, now: datetime, *, error_code: str, error_message: str
    ) -> list[uuid.UUID]:
        """Give up on rows nobody is working on whose deadline has passed; returns their ids."""
        m = self.model
        failed = self.session.scalars(
            update(m)
            .where(m.deadline_at <= now, self._waiting_or_abandoned(now))
            .values(
                status=self.failed_status,
                error_code=error_code,
                error_message=error_message,
                claimed_until=None,
                claim_token=None,
                completed_at=now,
                updated_at=now,
            )
            .returning(m.id),
            execution_options={"synchronize_session": False},
        )
        return list(failed.all())

    def _execute(self, statement: Any) -> CursorResult[Any]:
        result = self.session.execute(statement, execution_options={"synchronize_session": False})
        assert isinstance(result, CursorResult)
        return result


class VerificationRepository(_ClaimableRepository[Verification]):
    """A verification's job is its send: the first one (queued → sending → pending) or a
    re-send of a pending one, which stays pending while a worker holds it."""

    model = Verification
    waiting_status = VerificationStatus.QUEUED
    claimed_status = VerificationStatus.SENDING
    failed_status = VerificationStatus.FAILED

    def _claimable(self, now: datetime) -> ColumnElement[bool]:
        unclaimed_or_stale = or_(
            Verification.claimed_until.is_(None), Verification.claimed_until <= now
        )
        resend_waiting = and_(
            Verification.status == VerificationStatus.PENDING,
            Verification.resend_channel.is_not(None),
            unclaimed_or_stale,
        )
        return or_(super()._claimable(now), resend_waiting)

    def _claimed_status(self) -> Any:
        return case(
            (Verification.status == VerificationStatus.PENDING, VerificationStatus.PENDING),
            else_=VerificationStatus.SENDING,
        )

    def cancel(self, verification_id: uuid.UUID, now: datetime) -> bool:
        """End a verification that is not over yet."""
        return self.transition(
            verification_id,
            from_statuses=[
                VerificationStatus.QUEUED,
                VerificationStatus.SENDING,
                VerificationStatus.PENDING,
            ],
            status=VerificationStatus.CANCELED,
            resend_channel=None,
            completed_at=now,
            updated_at=now,
        )

    def request_resend(
        self,
        verification_id: uuid.UUID,
        channel: Channel,
        *,
        now: datetime,
        deadline: datetime,
        next_look: datetime,
    ) -> bool:
        result = self._execute(
            update(Verification)
            .where(
                Verification.id == verification_id,
                Verification.status == VerificationStatus.PENDING,
                Verification.resend_channel.is_(None),
            )
            .values(
                resend_channel=channel,
                deadline_at=deadline,
                next_attempt_at=next_look,
                enqueue_count=Verification.enqueue_count + 1,
                provider_attempts=0,
                updated_at=now,
            )
        )
        return result.rowcount == 1

    def drop_late_resends(self, now: datetime) -> int:
        """A re-send nobody managed before its deadline is dropped; the first code still works."""
        result = self._execute(
            update(Verification)
            .where(
                Verification.status == VerificationStatus.PENDING,
                Verification.resend_channel.is_not(None),
                Verification.deadline_at <= now,
                or_(Verification.claimed_until.is_(None), Verification.claimed_until <= now),
            )
            .values(resend_channel=None, claimed_until=None, claim_token=None, updated_at=now)
        )
        return result.rowcount

    def take_check_attempt(
        self, verification_id: uuid.UUID, max_attempts: int, now: datetime
    ) -> bool:
        """Count one more check against a pending verification, atomically, within the cap."""
        result = self._execute(
            update(Verification)
            .where(
                Verification.id == verification_id,
                Verification.status == VerificationStatus.PENDING,
                Verification.check_attempts < max_attempts,
            )
            .values(check_attempts=Verification.check_attempts + 1, updated_at=now)
        )
        return result.rowcount == 1

    def transition(
        self,
        verification_id: uuid.UUID,
        *,
        from_statuses: Sequence[VerificationStatus],
        **values: Any,
    ) -> bool:
        result = self._execute(
            update(Verification)
            .where(Verification.id == verification_id, Verification.status.in_(from_statuses))
            .values(**values)
        )
        return result.rowcount == 1

    def expire_pending(self, now: datetime) -> int:
        result = self._execute(
            update(Verification)
            .where(
                Verification.status == VerificationStatus.PENDING,
                Verification.expires_at <= now,
            )
            .values(
                status=VerificationStatus.EXPIRED,
                resend_channel=None,
                completed_at=now,
                updated_at=now,
            )
        )
        return result.rowcount


class CheckRepository(_ClaimableRepository[VerificationCheck]):
    model = VerificationCheck
    waiting_status = CheckStatus.QUEUED
    claimed_status = CheckStatus.QUEUED
    failed_status = CheckStatus.FAILED

    def get_for_verification(
        self, verification_id: uuid.UUID, check_id: uuid.UUID
    ) -> VerificationCheck | None:
        return self.session.scalar(
            select(VerificationCheck).where(
                VerificationCheck.id == check_id,
                VerificationCheck.verification_id == verification_id,
            )
        )


class FactorRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, factor: Factor) -> None:
        self.session.add(factor)

    def get(self, user_id: str, factor_id: uuid.UUID) -> Factor | None:
        return self.session.scalar(
            select(Factor).where(Factor.id == factor_id, Factor.user_id == user_id)
        )

    def list_for_user(self, user_id: str) -> Sequence[Factor]:
        return self.session.scalars(
            select(Factor).where(Factor.user_id == user_id).order_by(Factor.created_at)
        ).all()

    def latest_verified(self, user_id: str) -> Factor | None:
        return self.session.scalar(
            select(Factor)
            .where(Factor.user_id == user_id, Factor.status == FactorStatus.VERIFIED)
            .order_by(Factor.verified_at.desc())
            .limit(1)
        )

    def verified_for_another_user(self, phone_e164: str, user_id: str) -> bool:
        return (
            self.session.scalar(
                select(Factor.id)
                .where(
                    Factor.phone_e164 == phone_e164,
                    Factor.status == FactorStatus.VERIFIED,
                    Factor.user_id != user_id,
                )
                .limit(1)
            )
            is not None
        )

    def by_enrollment(self, verification_id: uuid.UUID) -> Factor | None:
        return self.session.scalar(
            select(Factor).where(Factor.enrollment_verification_id == verification_id)
        )

    def set_status(
        self,
        factor_id: uuid.UUID,
        *,
        from_statuses: Sequence[FactorStatus],
        **values: Any,
    ) -> bool:
        result = self.session.execute(
            update(Factor)
            .where(Factor.id == factor_id, Factor.status.in_(from_statuses))
            .values(**values),
            execution_options={"synchronize_session": False},
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1

    def verified_others(self, user_id: str, except_id: uuid.UUID) -> Sequence[Factor]:
        return self.session.scalars(
            select(Factor).where(
                Factor.user_id == user_id,
                Factor.status == FactorStatus.VERIFIED,
                Factor.id != except_id,
            )
        ).all()


class RecoveryCodeRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def replace_for_user(self, user_id: str, codes: Sequence[RecoveryCode]) -> None:
        self.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
        self.session.add_all(codes)

    def unused_for_user(self, user_id: str) -> Sequence[RecoveryCode]:
        return self.session.scalars(
            select(RecoveryCode).where(
                RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None)
            )
        ).all()

    def use(self, code_id: uuid.UUID, now: datetime) -> bool:
        """Spend a code, once: of two racing redemptions only one succeeds."""
        result = self.session.execute(
            update(RecoveryCode)
            .where(RecoveryCode.id == code_id, RecoveryCode.used_at.is_(None))
            .values(used_at=now),
            execution_options={"synchronize_session": False},
        )
        assert isinstance(result, CursorResult)
        return result.rowcount == 1


class EventRepository:
    """Append and read; there is deliberately no way to change or remove an event."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, event: Event) -> None:
        self.session.add(event)

    def page_for_user(
        self, user_id: str, *, before: int | None, limit: int
    ) -> Sequence[tuple[Event, str | None]]:
        """Newest first, with the name of the API key that caused each event."""
        statement = (
            select(Event, ApiKey.name)
            .outerjoin(ApiKey, ApiKey.id == Event.api_key_id)
            .where(Event.user_id == user_id)
            .order_by(Event.id.desc())
            .limit(limit)
        )
        if before is not None:
            statement = statement.where(Event.id < before)
        return [(event, name) for event, name in self.session.execute(statement).all()]
