"""Tables. Alembic's migrations are the schema's source of truth; a test keeps the two equal.

No column ever holds a one-time code. Task messages carry only the ids below.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.db.base import Base
from shared.domain import (
    Channel,
    CheckStatus,
    EventType,
    FactorStatus,
    Purpose,
    VerificationStatus,
)


def _enum(enum_class: type[StrEnum], name: str) -> Enum:
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # SHA-256 of the whole key: keys are 256-bit random, so a fast hash is enough to store them.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class JobRow:
    """What a row needs to be worked on by jobs: claims, attempts, deadlines, the last error."""

    # Provider calls made for this row's job (retries included).
    provider_attempts: Mapped[int] = mapped_column(default=0)
    # Set while a worker holds the row; another worker may take it over once it has passed.
    claimed_until: Mapped[datetime | None]
    # Which claim may write the outcome: a worker whose lease ran out must not overwrite another's.
    claim_token: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    # Set just before a provider call and cleared once its outcome is known: a value left over
    # means an earlier call's outcome was lost, so the next attempt must look before it sends.
    provider_call_started_at: Mapped[datetime | None]
    # When the sweeper should consider the job lost if the row is still waiting.
    next_attempt_at: Mapped[datetime]
    # How often a job for this row was published; the sweeper backs off by it.
    enqueue_count: Mapped[int] = mapped_column(default=0)

    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(300))
    provider_error_code: Mapped[int | None]

    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deadline_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]


class Verification(JobRow, Base):
    __tablename__ = "verifications"
    __table_args__ = (
        Index("ix_verifications_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_verifications_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    status: Mapped[VerificationStatus] = mapped_column(
        _enum(VerificationStatus, "verification_status")
    )
    purpose: Mapped[Purpose] = mapped_column(_enum(Purpose, "verification_purpose"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "verification_channel"))
    to_e164: Mapped[str] = mapped_column(String(16))
    destination_region: Mapped[str] = mapped_column(String(3))
    locale: Mapped[str | None] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(128), index=True)
    client_ip: Mapped[str | None] = mapped_column(String(45))
    api_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id"), index=True)

    provider_sid: Mapped[str | None] = mapped_column(String(34))
    send_attempts: Mapped[int] = mapped_column(default=0)
    check_attempts: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime | None]
    # Set while a re-send of a pending verification waits for a worker (the same code again,
    # possibly on another channel); the verification stays pending and checkable meanwhile.
    resend_channel: Mapped[Channel | None] = mapped_column(_enum(Channel, "resend_channel"))


class VerificationCheck(JobRow, Base):
    __tablename__ = "verification_checks"
    __table_args__ = (
        Index("ix_verification_checks_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    verification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("verifications.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[CheckStatus] = mapped_column(_enum(CheckStatus, "check_status"))


class IdempotencyRecord(Base):
    """The first answer to a request made with an ``Idempotency-Key``, replayed for repeats."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    api_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the request without any code in it: a code must not be stored, even hashed.
    request_fingerprint: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int]
    response_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class Factor(Base):
    """A user's phone enrolled for two-step authentication."""

    __tablename__ = "factors"
    __table_args__ = (Index("ix_factors_phone_e164_status", "phone_e164", "status"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    phone_e164: Mapped[str] = mapped_column(String(16))
    destination_region: Mapped[str] = mapped_column(String(3))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "factor_channel"))
    status: Mapped[FactorStatus] = mapped_column(_enum(FactorStatus, "factor_status"))
    # Approving this verification verifies the factor; until then 2SA is as it was.
    enrollment_verification_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("verifications.id"), unique=True
    )
    # Whether verifying this factor disables the user's other verified ones (a phone change).
    replaces_others: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]


class RecoveryCode(Base):
    """One of a user's one-time recovery codes, kept only as a slow (scrypt) hash."""

    __tablename__ = "recovery_codes"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Event(Base):
    """The audit trail: appended to, never changed. No codes; destinations masked."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_user_id_id", "user_id", "id"),)

    # An integer key orders events as they were written and pages cheaply.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    occurred_at: Mapped[datetime]
    # No CHECK constraint: new kinds of event must not need a migration of old rows.
    type: Mapped[EventType] = mapped_column(
        Enum(
            EventType,
            native_enum=False,
            create_constraint=False,
            length=48,
            values_callable=lambda members: [member.value for member in members],
            validate_strings=True,
        )
    )
    user_id: Mapped[str | None] = mapped_column(String(128))
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_keys.id"))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    destination: Mapped[str | None] = mapped_column(String(24))  # masked, e.g. +1415•••••23
    verification_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    factor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
