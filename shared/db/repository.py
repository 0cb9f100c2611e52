"""Every query lives here, as named operations. State changes that race (claims, outcomes,
expiry) are single compare-and-set UPDATEs, so they are atomic on PostgreSQL and SQLite alike.

One data-access layer for the API and the workers: both run these on SQLAlchemy's asyncio
extension.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Table,
    Uuid,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.dml import Delete, Update

from shared.db.base import UTCDateTime
from shared.db.models import (
    ApiKey,
    Event,
    Factor,
    IdempotencyRecord,
    RecoveryCode,
    Tenant,
    Verification,
    VerificationCheck,
    WebhookDelivery,
    WebhookEndpoint,
)
from shared.domain import (
    OPEN_VERIFICATION_STATUSES,
    AttemptError,
    Channel,
    CheckStatus,
    DeliveryStatus,
    ErrorCode,
    FactorStatus,
    VerificationStatus,
)

Claimable = TypeVar("Claimable", Verification, VerificationCheck, WebhookDelivery)
T = TypeVar("T")
S = TypeVar("S", bound=Executable)
# A moment in a statement: a datetime, or a parameter of a prepared statement.
When = datetime | BindParameter[datetime]

_MESSAGE_LIMIT = 300

# The parameters of the prepared statements below, typed: their values go through the same
# conversions (UTC datetimes on SQLite, UUIDs as hex) as the columns'.
_ID = bindparam("row_id", type_=Uuid())
_TENANT = bindparam("tenant_id", type_=Uuid())
_TOKEN = bindparam("token", type_=Uuid())
_NOW = bindparam("now", type_=UTCDateTime())
_UNTIL = bindparam("until", type_=UTCDateTime())
_ERROR: dict[str, BindParameter[Any]] = {
    "error_code": bindparam("error_code"),
    "error_message": bindparam("error_message"),
    "provider_error_code": bindparam("provider_error_code"),
}


class prepared(Generic[S]):
    """A statement a repository class builds once, on first use, and runs with parameters:
    the work of building it (and of SQLAlchemy's caching key for it) is not redone per call."""

    def __init__(self, build: Callable[[Any], S]) -> None:
        self._build = build
        self._by_class: dict[type, S] = {}

    def __get__(self, instance: object, owner: type) -> S:
        statement = self._by_class.get(owner)
        if statement is None:
            statement = self._by_class[owner] = self._build(owner)
        return statement


def _error_columns(error: AttemptError | None) -> dict[str, object]:
    return {
        "error_code": error.reason.value if error else None,
        "error_message": error.message[:_MESSAGE_LIMIT] if error else None,
        "provider_error_code": error.provider_code if error else None,
    }


_TAKEN_OVER = AttemptError(
    ErrorCode.SUPERSEDED, "a newer verification to the same number took its place"
)
_NO_ERROR: dict[str, object] = {
    "error_code": None,
    "error_message": None,
    "provider_error_code": None,
}
_RELEASED: dict[str, object] = {"claimed_until": None, "claim_token": None}


def _column_param(model: type[Any], column: str) -> BindParameter[Any]:
    """A parameter named and typed after one of the model's columns."""
    return bindparam(column, type_=model.__table__.c[column].type)


class _Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def _write(self, statement: Update | Delete) -> int:
        """Run an UPDATE or DELETE; returns how many rows it changed."""
        result: Any = await self.session.execute(
            statement, execution_options={"synchronize_session": False}
        )
        return int(result.rowcount)

    async def _write_returning(self, statement: Update) -> Sequence[Any]:
        result = await self.session.execute(
            statement, execution_options={"synchronize_session": False}
        )
        return result.all()

    async def _update_one(self, statement: Update, model: type[T]) -> T | None:
        """Run an UPDATE of at most one row; returns the row as it is now, or None if it
        matched nothing."""
        rows = await self._write_returning(
            statement.returning(model).execution_options(populate_existing=True)
        )
        return rows[0][0] if rows else None

    async def _run_prepared(self, statement: Executable, **values: Any) -> Any:
        """Run a prepared statement with its parameters' values; returns the result."""
        return await self.session.execute(
            statement, values, execution_options={"synchronize_session": False}
        )

    async def _prepared_one(self, statement: Executable, **values: Any) -> Any:
        """The one row (an entity) a prepared statement returns, or None."""
        return (await self._run_prepared(statement, **values)).scalars().first()

    async def _prepared_count(self, statement: Executable, **values: Any) -> int:
        return int((await self._run_prepared(statement, **values)).rowcount)


class TenantRepository(_Repository):
    async def get_or_create(self, name: str, now: datetime) -> Tenant:
        """A tenant that sends through the deployment's Verify service (the default one)."""
        tenant = await self.get_by_name(name)
        if tenant is None:
            tenant = Tenant(id=uuid.uuid4(), name=name, display_name=name[:30], created_at=now)
            await self.add(tenant)
        return tenant

    async def add(self, tenant: Tenant) -> None:
        self.session.add(tenant)
        await self.session.flush()

    async def get(self, tenant_id: uuid.UUID) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def get_by_name(self, name: str) -> Tenant | None:
        return await self.session.scalar(select(Tenant).where(Tenant.name == name))

    async def list_all(self) -> Sequence[Tenant]:
        return (await self.session.scalars(select(Tenant).order_by(Tenant.created_at))).all()

    async def set_service(self, tenant_id: uuid.UUID, service_sid: str, display_name: str) -> None:
        await self._write(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(verify_service_sid=service_sid, display_name=display_name)
        )

    async def names(self) -> dict[uuid.UUID, str]:
        return {t.id: t.name for t in (await self.session.scalars(select(Tenant))).all()}


class ApiKeyRepository(_Repository):
    def add(self, key: ApiKey) -> None:
        self.session.add(key)

    async def get_active_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )

    async def get_by_name(self, name: str) -> ApiKey | None:
        return await self.session.scalar(select(ApiKey).where(ApiKey.name == name))

    async def list_all(self) -> Sequence[ApiKey]:
        return (await self.session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()

    async def revoke(self, key_id: uuid.UUID, now: datetime) -> bool:
        return (
            await self._write(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            == 1
        )


class IdempotencyRepository(_Repository):
    async def get(self, api_key_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
        return await self.session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == key
            )
        )

    def add(self, record: IdempotencyRecord) -> None:
        self.session.add(record)

    async def delete_expired(self, now: datetime) -> int:
        return await self._write(
            delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
        )

    async def delete_expired_key(self, api_key_id: uuid.UUID, key: str, now: datetime) -> int:
        return await self._write(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.expires_at <= now,
                IdempotencyRecord.api_key_id == api_key_id,
                IdempotencyRecord.key == key,
            )
        )


class JobRows(_Repository, Generic[Claimable]):
    """Claims, retries and the sweeper's operations, shared by the two kinds of job rows."""

    model: type[Claimable]
    waiting_status: ClassVar[VerificationStatus | CheckStatus | DeliveryStatus]
    # The status a claimed row shows while a worker holds it (checks keep "queued").
    claimed_status: ClassVar[VerificationStatus | CheckStatus | DeliveryStatus]
    failed_status: ClassVar[VerificationStatus | CheckStatus | DeliveryStatus]
    # The statuses a row may show while a worker holds it.
    held_statuses: ClassVar[tuple[VerificationStatus | CheckStatus | DeliveryStatus, ...]]

    @prepared
    def _insert(cls) -> Executable:
        table: Table = cls.model.__table__  # type: ignore[assignment]  # mapped classes have one
        return insert(table)

    async def insert(self, row: Claimable) -> None:
        """Insert a new row, as a plain statement: no session bookkeeping for it."""
        columns = self.model.__table__.columns
        await self.session.execute(
            self._insert, {column.key: getattr(row, column.key) for column in columns}
        )

    @prepared
    def _by_id(cls) -> Executable:
        return (
            select(cls.model).where(cls.model.id == _ID).execution_options(populate_existing=True)
        )

    async def get(self, row_id: uuid.UUID) -> Claimable | None:
        """Any tenant's row: for the workers and the sweeper, which act on ids they were given."""
        found: Claimable | None = await self._prepared_one(self._by_id, row_id=row_id)
        return found

    @prepared
    def _of_tenant(cls) -> Executable:
        m = cls.model
        return (
            select(m)
            .where(m.id == _ID, m.tenant_id == _TENANT)
            .execution_options(populate_existing=True)
        )

    async def get_of_tenant(self, tenant_id: uuid.UUID, row_id: uuid.UUID) -> Claimable | None:
        """The row only if it is this tenant's: another tenant's id is simply not found."""
        found: Claimable | None = await self._prepared_one(
            self._of_tenant, row_id=row_id, tenant_id=tenant_id
        )
        return found

    @classmethod
    def _unclaimed_or_stale(cls, now: When) -> ColumnElement[bool]:
        m = cls.model
        return or_(m.claimed_until.is_(None), m.claimed_until <= now)

    @classmethod
    def _claimable(cls, now: When) -> ColumnElement[bool]:
        """Rows a worker may claim now."""
        return cls._waiting_or_abandoned(now)

    @classmethod
    def _waiting_or_abandoned(cls, now: When) -> ColumnElement[bool]:
        """Rows waiting for their first outcome, or held by a claim that went stale."""
        m = cls.model
        if cls.claimed_status == cls.waiting_status:
            return and_(m.status == cls.waiting_status, cls._unclaimed_or_stale(now))
        return or_(
            m.status == cls.waiting_status,
            and_(m.status == cls.claimed_status, cls._unclaimed_or_stale(now)),
        )

    @classmethod
    def _status_when_claimed(cls) -> Any:
        return cls.claimed_status

    @classmethod
    def _status_after_release(cls) -> Any:
        return cls.waiting_status

    @classmethod
    def _held(cls) -> ColumnElement[bool]:
        """The row of a prepared statement's ``row_id``, while ``token`` still holds it."""
        m = cls.model
        return and_(m.id == _ID, m.claim_token == _TOKEN, m.status.in_(cls.held_statuses))

    @prepared
    def _claim(cls) -> Executable:
        m = cls.model
        return (
            update(m)
            .where(m.id == _ID, cls._claimable(_NOW))
            .values(
                status=cls._status_when_claimed(),
                claimed_until=_UNTIL,
                claim_token=_TOKEN,
                provider_attempts=m.provider_attempts + 1,
                provider_call_started_at=func.coalesce(m.provider_call_started_at, _NOW),
                next_attempt_at=_UNTIL,
                updated_at=_NOW,
            )
            .returning(m)
            .execution_options(populate_existing=True)
        )

    async def claim(self, row_id: uuid.UUID, *, now: datetime, until: datetime) -> Claimable | None:
        """Take the row for one attempt and mark a provider call as started, in one statement.

        Returns the row as claimed (its ``claim_token`` is the claim), or None if another worker
        holds it or it needs no more work. A call marker older than ``now`` on the returned row
        was left by an earlier call whose answer was lost. The lease's end doubles as the
        sweeper's next look.
        """
        claimed: Claimable | None = await self._prepared_one(
            self._claim, row_id=row_id, now=now, until=until, token=uuid.uuid4()
        )
        return claimed

    @prepared
    def _release_for_retry(cls) -> Executable:
        return (
            update(cls.model)
            .where(cls._held())
            .values(
                status=cls._status_after_release(),
                provider_call_started_at=bindparam("lost_call_at", type_=UTCDateTime()),
                next_attempt_at=bindparam("next_look", type_=UTCDateTime()),
                updated_at=_NOW,
                **_ERROR,
                **_RELEASED,
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
            **_error_columns(error),
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
        m = self.model
        return (
            await self._write(
                update(m)
                .where(m.id == row_id, m.claim_token == token, m.status.in_(self.held_statuses))
                .values(
                    status=self._status_after_release(),
                    provider_attempts=case(
                        (m.provider_attempts > 0, m.provider_attempts - 1), else_=0
                    ),
                    provider_call_started_at=lost_call_at,
                    next_attempt_at=next_look,
                    updated_at=now,
                    **_RELEASED,
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
            await self.session.scalars(
                select(m.id)
                .where(m.next_attempt_at <= now, self._claimable(now))
                .order_by(m.next_attempt_at)
                .limit(limit)
            )
        ).all()
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
        m = self.model
        failed = await self._write_returning(
            update(m)
            .where(m.deadline_at <= now, self._waiting_or_abandoned(now))
            .values(
                status=self.failed_status,
                completed_at=now,
                updated_at=now,
                **_error_columns(error),
                **_RELEASED,
            )
            .returning(m)
            .execution_options(populate_existing=True)
        )
        return [row for (row,) in failed]


class VerificationRepository(JobRows[Verification]):
    """A verification's job is its send: the first one (queued → sending → pending) or a
    re-send of a pending one, which stays pending while a worker holds it."""

    model = Verification
    waiting_status = VerificationStatus.QUEUED
    claimed_status = VerificationStatus.SENDING
    failed_status = VerificationStatus.FAILED
    held_statuses = (VerificationStatus.SENDING, VerificationStatus.PENDING)

    @classmethod
    def _claimable(cls, now: When) -> ColumnElement[bool]:
        resend_waiting = and_(
            Verification.status == VerificationStatus.PENDING,
            Verification.resend_channel.is_not(None),
            cls._unclaimed_or_stale(now),
        )
        return or_(super()._claimable(now), resend_waiting)

    @classmethod
    def _status_when_claimed(cls) -> Any:
        # A re-send keeps the verification pending (and checkable) while it is sent.
        return case(
            (Verification.status == VerificationStatus.PENDING, VerificationStatus.PENDING),
            else_=VerificationStatus.SENDING,
        )

    @classmethod
    def _status_after_release(cls) -> Any:
        return case(
            (Verification.status == VerificationStatus.PENDING, VerificationStatus.PENDING),
            else_=VerificationStatus.QUEUED,
        )

    @prepared
    def _record_sent(cls) -> Executable:
        v = Verification
        return (
            update(v)
            .where(cls._held())
            .values(
                status=VerificationStatus.PENDING,
                provider_sid=_column_param(v, "provider_sid"),
                provider_service_sid=_column_param(v, "provider_service_sid"),
                provider_open=True,
                channel=_column_param(v, "channel"),
                resend_channel=None,
                send_attempts=v.send_attempts + 1,
                expires_at=_column_param(v, "expires_at"),
                provider_call_started_at=None,
                updated_at=_NOW,
                **_NO_ERROR,
                **_RELEASED,
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
                Verification.status == VerificationStatus.PENDING,
                Verification.id != verification_id,
            )
            .values(
                status=VerificationStatus.CANCELED,
                provider_open=False,  # the provider's verification is the new holder's now
                completed_at=now,
                updated_at=now,
                **_error_columns(_TAKEN_OVER),
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
        status: VerificationStatus = VerificationStatus.FAILED,
    ) -> Verification | None:
        """A first send that cannot be made ends the verification (``status``: failed, or
        canceled when superseded); a re-send that cannot be made is dropped, and the code sent
        first still works — unless the verification was superseded, which ends it too."""
        superseded = status is VerificationStatus.CANCELED
        return await self._update_one(
            update(Verification)
            .where(
                Verification.id == verification_id,
                Verification.claim_token == token,
                Verification.status.in_(self.held_statuses),
            )
            .values(
                status=status if superseded else self._status_after_giving_up(),
                completed_at=now
                if superseded
                else case((Verification.status == VerificationStatus.PENDING, None), else_=now),
                resend_channel=None,
                provider_call_started_at=None,
                updated_at=now,
                **_error_columns(error),
                **_RELEASED,
            ),
            Verification,
        )

    @staticmethod
    def _status_after_giving_up() -> Any:
        return case(
            (Verification.status == VerificationStatus.PENDING, VerificationStatus.PENDING),
            else_=VerificationStatus.FAILED,
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
                Verification.status.in_(
                    [
                        VerificationStatus.QUEUED,
                        VerificationStatus.SENDING,
                        VerificationStatus.PENDING,
                    ]
                ),
            )
            .values(
                status=VerificationStatus.CANCELED,
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
            ),
            Verification,
        )

    @prepared
    def _take_check_attempt(cls) -> Executable:
        v = Verification
        return (
            update(v)
            .where(
                v.id == _ID,
                v.status == VerificationStatus.PENDING,
                v.check_attempts < bindparam("max_attempts"),
            )
            .values(check_attempts=v.check_attempts + 1, updated_at=_NOW)
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
                    Verification.status == VerificationStatus.PENDING,
                    Verification.check_attempts > 0,
                )
                .values(check_attempts=Verification.check_attempts - 1, updated_at=now)
            )
            == 1
        )

    async def approve(self, verification_id: uuid.UUID, now: datetime) -> Verification | None:
        """Approved: the provider deleted it as it approved it."""
        return await self._end_pending(
            verification_id, VerificationStatus.APPROVED, None, now, provider_open=False
        )

    async def end_pending(
        self,
        verification_id: uuid.UUID,
        status: VerificationStatus,
        error: AttemptError,
        now: datetime,
        *,
        provider_open: bool,
    ) -> Verification | None:
        """End a pending verification for a reason (expired, max attempts reached);
        ``provider_open``: whether the provider may still hold it open."""
        return await self._end_pending(verification_id, status, error, now, provider_open)

    @prepared
    def _end_pending_statement(cls) -> Executable:
        v = Verification
        return (
            update(v)
            .where(v.id == _ID, v.status == VerificationStatus.PENDING)
            .values(
                status=_column_param(v, "status"),
                provider_open=_column_param(v, "provider_open"),
                resend_channel=None,
                completed_at=_NOW,
                updated_at=_NOW,
                **_ERROR,
            )
            .returning(v)
            .execution_options(populate_existing=True)
        )

    async def _end_pending(
        self,
        verification_id: uuid.UUID,
        status: VerificationStatus,
        error: AttemptError | None,
        now: datetime,
        provider_open: bool,
    ) -> Verification | None:
        ended: Verification | None = await self._prepared_one(
            self._end_pending_statement,
            row_id=verification_id,
            status=status,
            provider_open=provider_open,
            now=now,
            **_error_columns(error),
        )
        return ended

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
            .where(v.id.in_(verification_ids), v.status.in_(OPEN_VERIFICATION_STATUSES))
            .values(
                status=VerificationStatus.CANCELED,
                resend_channel=None,
                completed_at=now,
                updated_at=now,
                **_error_columns(error),
                **_RELEASED,
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
            .returning(Verification)
            .execution_options(populate_existing=True)
        )
        return [row for (row,) in expired]

    async def drop_late_resends(self, now: datetime) -> int:
        """A re-send nobody managed before its deadline is dropped; the first code still works."""
        return await self._write(
            update(Verification)
            .where(
                Verification.status == VerificationStatus.PENDING,
                Verification.resend_channel.is_not(None),
                Verification.deadline_at <= now,
                self._unclaimed_or_stale(now),
            )
            .values(resend_channel=None, updated_at=now, **_RELEASED)
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


class CheckRepository(JobRows[VerificationCheck]):
    model = VerificationCheck
    waiting_status = CheckStatus.QUEUED
    claimed_status = CheckStatus.QUEUED
    failed_status = CheckStatus.FAILED
    held_statuses = (CheckStatus.QUEUED,)

    @prepared
    def _of_verification(cls) -> Executable:
        c = VerificationCheck
        return select(c).where(
            c.id == _ID,
            c.verification_id == bindparam("verification_id", type_=Uuid()),
            c.tenant_id == _TENANT,
        )

    async def get_for_verification(
        self, tenant_id: uuid.UUID, verification_id: uuid.UUID, check_id: uuid.UUID
    ) -> VerificationCheck | None:
        found: VerificationCheck | None = await self._prepared_one(
            self._of_verification,
            row_id=check_id,
            verification_id=verification_id,
            tenant_id=tenant_id,
        )
        return found

    async def provider_calls_for(self, verification_id: uuid.UUID) -> int:
        """Provider calls made for a verification's checks, retries included."""
        total = await self.session.scalar(
            select(func.coalesce(func.sum(VerificationCheck.provider_attempts), 0)).where(
                VerificationCheck.verification_id == verification_id
            )
        )
        return int(total or 0)

    @prepared
    def _finish(cls) -> Executable:
        c = VerificationCheck
        return (
            update(c)
            .where(cls._held())
            .values(
                status=_column_param(c, "status"),
                provider_call_started_at=None,
                completed_at=_NOW,
                updated_at=_NOW,
                **_ERROR,
                **_RELEASED,
            )
            .returning(c)
            .execution_options(populate_existing=True)
        )

    async def finish(
        self,
        check_id: uuid.UUID,
        token: uuid.UUID,
        *,
        status: CheckStatus,
        error: AttemptError | None,
        now: datetime,
    ) -> VerificationCheck | None:
        """Record a check's final status (and why, unless it was simply answered)."""
        finished: VerificationCheck | None = await self._prepared_one(
            self._finish,
            row_id=check_id,
            token=token,
            status=status,
            now=now,
            **_error_columns(error),
        )
        return finished


class DeliveryRepository(JobRows[WebhookDelivery]):
    """Webhook deliveries: job rows like checks (a claim keeps them "queued"), whose outcome is
    the receiver's answer."""

    model = WebhookDelivery
    waiting_status = DeliveryStatus.QUEUED
    claimed_status = DeliveryStatus.QUEUED
    failed_status = DeliveryStatus.FAILED
    held_statuses = (DeliveryStatus.QUEUED,)

    async def settle(
        self,
        delivery_id: uuid.UUID,
        token: uuid.UUID,
        *,
        status: DeliveryStatus,
        http_status: int | None,
        error: AttemptError | None,
        now: datetime,
    ) -> bool:
        """Delivered, or given up for good; only while the claim is ours."""
        d = WebhookDelivery
        return (
            await self._write(
                update(d)
                .where(
                    d.id == delivery_id,
                    d.claim_token == token,
                    d.status == DeliveryStatus.QUEUED,
                )
                .values(
                    status=status,
                    completed_at=now,
                    updated_at=now,
                    provider_call_started_at=None,
                    **{**_error_columns(error), "provider_error_code": http_status},
                    **_RELEASED,
                )
            )
            == 1
        )

    async def redeliver(
        self, tenant_id: uuid.UUID, delivery_id: uuid.UUID, *, now: datetime, deadline: datetime
    ) -> WebhookDelivery | None:
        """Queue a delivery again, whatever became of it, with a new deadline."""
        d = WebhookDelivery
        return await self._update_one(
            update(d)
            .where(d.id == delivery_id, d.tenant_id == tenant_id)
            .values(
                status=DeliveryStatus.QUEUED,
                provider_attempts=0,
                next_attempt_at=now,
                deadline_at=deadline,
                completed_at=None,
                provider_call_started_at=None,
                enqueue_count=d.enqueue_count + 1,
                updated_at=now,
                **_NO_ERROR,
                **_RELEASED,
            ),
            WebhookDelivery,
        )

    async def page(
        self,
        tenant_id: uuid.UUID,
        *,
        endpoint_id: uuid.UUID | None,
        status: DeliveryStatus | None,
        limit: int,
    ) -> Sequence[WebhookDelivery]:
        """The tenant's deliveries, newest first."""
        d = WebhookDelivery
        query = select(d).where(d.tenant_id == tenant_id)
        if endpoint_id is not None:
            query = query.where(d.endpoint_id == endpoint_id)
        if status is not None:
            query = query.where(d.status == status)
        return (await self.session.scalars(query.order_by(d.created_at.desc()).limit(limit))).all()


class WebhookEndpointRepository(_Repository):
    """A tenant's webhook receivers; deleted ones stay (their deliveries point to them)."""

    def add(self, endpoint: WebhookEndpoint) -> None:
        self.session.add(endpoint)

    async def get(self, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
        return await self.session.get(WebhookEndpoint, endpoint_id)

    async def get_of_tenant(
        self, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
    ) -> WebhookEndpoint | None:
        e = WebhookEndpoint
        return await self.session.scalar(
            select(e).where(e.id == endpoint_id, e.tenant_id == tenant_id, e.deleted_at.is_(None))
        )

    async def active(self, tenant_id: uuid.UUID) -> Sequence[WebhookEndpoint]:
        e = WebhookEndpoint
        return (
            await self.session.scalars(
                select(e)
                .where(e.tenant_id == tenant_id, e.deleted_at.is_(None))
                .order_by(e.created_at)
            )
        ).all()

    async def delete(self, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, now: datetime) -> bool:
        e = WebhookEndpoint
        return (
            await self._write(
                update(e)
                .where(e.id == endpoint_id, e.tenant_id == tenant_id, e.deleted_at.is_(None))
                .values(deleted_at=now)
            )
            == 1
        )

    async def rotate(
        self, endpoint: WebhookEndpoint, new_secret: str, *, old_until: datetime
    ) -> None:
        """The new secret signs from now on; the current one too, until ``old_until``."""
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_until = old_until
        endpoint.secret = new_secret
        await self.session.flush()


class FactorRepository(_Repository):
    """A tenant's users' phones. Every read names the tenant."""

    def add(self, factor: Factor) -> None:
        self.session.add(factor)

    async def get(self, tenant_id: uuid.UUID, user_id: str, factor_id: uuid.UUID) -> Factor | None:
        return await self.session.scalar(
            select(Factor).where(
                Factor.id == factor_id, Factor.tenant_id == tenant_id, Factor.user_id == user_id
            )
        )

    async def list_for_user(self, tenant_id: uuid.UUID, user_id: str) -> Sequence[Factor]:
        return (
            await self.session.scalars(
                select(Factor)
                .where(Factor.tenant_id == tenant_id, Factor.user_id == user_id)
                .order_by(Factor.created_at)
            )
        ).all()

    async def latest_verified(self, tenant_id: uuid.UUID, user_id: str) -> Factor | None:
        return await self.session.scalar(
            select(Factor)
            .where(
                Factor.tenant_id == tenant_id,
                Factor.user_id == user_id,
                Factor.status == FactorStatus.VERIFIED,
            )
            .order_by(Factor.verified_at.desc())
            .limit(1)
        )

    async def verified_for_another_user(self, factor: Factor) -> bool:
        """Whether the factor's phone is verified for another user of its tenant."""
        found = await self.session.scalar(
            select(Factor.id)
            .where(
                Factor.tenant_id == factor.tenant_id,
                Factor.phone_lookup == factor.phone_lookup,
                Factor.status == FactorStatus.VERIFIED,
                Factor.user_id != factor.user_id,
            )
            .limit(1)
        )
        return found is not None

    async def by_enrollment(self, verification_id: uuid.UUID) -> Factor | None:
        return await self.session.scalar(
            select(Factor).where(Factor.enrollment_verification_id == verification_id)
        )

    async def verify(self, factor_id: uuid.UUID, now: datetime) -> bool:
        return (
            await self._write(
                update(Factor)
                .where(Factor.id == factor_id, Factor.status == FactorStatus.UNVERIFIED)
                .values(status=FactorStatus.VERIFIED, verified_at=now, updated_at=now)
            )
            == 1
        )

    async def disable(self, factor_id: uuid.UUID, now: datetime) -> bool:
        return (
            await self._write(
                update(Factor)
                .where(Factor.id == factor_id, Factor.status != FactorStatus.DISABLED)
                .values(status=FactorStatus.DISABLED, disabled_at=now, updated_at=now)
            )
            == 1
        )

    async def verified_others(self, factor: Factor) -> Sequence[Factor]:
        """The factor's user's other verified factors."""
        return (
            await self.session.scalars(
                select(Factor).where(
                    Factor.tenant_id == factor.tenant_id,
                    Factor.user_id == factor.user_id,
                    Factor.status == FactorStatus.VERIFIED,
                    Factor.id != factor.id,
                )
            )
        ).all()

    async def forget_enrollments(self, verification_ids: Sequence[uuid.UUID]) -> int:
        """Unlink factors from enrolment verifications about to be deleted (retention)."""
        return await self._write(
            update(Factor)
            .where(Factor.enrollment_verification_id.in_(verification_ids))
            .values(enrollment_verification_id=None)
        )


class RecoveryCodeRepository(_Repository):
    async def replace_for_user(
        self, tenant_id: uuid.UUID, user_id: str, codes: Sequence[RecoveryCode]
    ) -> None:
        await self._write(
            delete(RecoveryCode).where(
                RecoveryCode.tenant_id == tenant_id, RecoveryCode.user_id == user_id
            )
        )
        self.session.add_all(codes)

    async def unused_candidates(
        self, tenant_id: uuid.UUID, user_id: str, selector: str | None
    ) -> Sequence[RecoveryCode]:
        """The unused code with this selector (at most one), or with ``None`` the user's unused
        codes made before selectors existed."""
        selected = (
            RecoveryCode.selector.is_(None)
            if selector is None
            else RecoveryCode.selector == selector
        )
        return (
            await self.session.scalars(
                select(RecoveryCode).where(
                    RecoveryCode.tenant_id == tenant_id,
                    RecoveryCode.user_id == user_id,
                    RecoveryCode.used_at.is_(None),
                    selected,
                )
            )
        ).all()

    async def count_unused(self, tenant_id: uuid.UUID, user_id: str) -> int:
        total = await self.session.scalar(
            select(func.count(RecoveryCode.id)).where(
                RecoveryCode.tenant_id == tenant_id,
                RecoveryCode.user_id == user_id,
                RecoveryCode.used_at.is_(None),
            )
        )
        return int(total or 0)

    async def use(self, code_id: uuid.UUID, now: datetime) -> bool:
        """Spend a code, once: of two racing redemptions only one succeeds."""
        return (
            await self._write(
                update(RecoveryCode)
                .where(RecoveryCode.id == code_id, RecoveryCode.used_at.is_(None))
                .values(used_at=now)
            )
            == 1
        )


_EVENT_COLUMNS = tuple(column.key for column in Event.__table__.columns if column.key != "id")


class EventRepository(_Repository):
    """Append and read; there is deliberately no way to change or remove an event."""

    @prepared
    def _append(cls) -> Executable:
        table: Table = Event.__table__  # type: ignore[assignment]  # mapped classes have one
        return insert(table)

    async def append(self, event: Event) -> None:
        """Insert an event as a plain statement: no session bookkeeping for a row nobody reads
        back in the same transaction."""
        await self.session.execute(
            self._append, {column: getattr(event, column) for column in _EVENT_COLUMNS}
        )

    async def page_for_user(
        self, tenant_id: uuid.UUID, user_id: str, *, before: int | None, limit: int
    ) -> Sequence[tuple[Event, str | None]]:
        """Newest first, with the name of the API key that caused each event."""
        statement = (
            select(Event, ApiKey.name)
            .outerjoin(ApiKey, ApiKey.id == Event.api_key_id)
            .where(Event.tenant_id == tenant_id, Event.user_id == user_id)
            .order_by(Event.id.desc())
            .limit(limit)
        )
        if before is not None:
            statement = statement.where(Event.id < before)
        return [(event, name) for event, name in (await self.session.execute(statement)).all()]

    async def delete_older_than(self, cutoff: datetime, limit: int) -> int:
        """Retention: forget the oldest events, a batch at a time."""
        oldest = select(Event.id).where(Event.occurred_at < cutoff).limit(limit)
        return await self._write(delete(Event).where(Event.id.in_(oldest.scalar_subquery())))
