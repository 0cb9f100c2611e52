"""Tables. Alembic's migrations are the schema's source of truth; a test keeps the two equal.

No column ever holds a one-time code. Task messages carry only the ids below. Every row belongs
to a tenant; phone numbers and client IPs are stored encrypted (``EncryptedString``), and a
column searched by equality has a keyed hash beside it (``*_lookup``).
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
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.crypto import EncryptedString
from shared.db.base import Base
from shared.domain import (
    Channel,
    CheckStatus,
    DeliveryStatus,
    EventType,
    FactorStatus,
    Purpose,
    VerificationStatus,
    WebhookEvent,
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


class Tenant(Base):
    """A login server's world: its keys, users, verifications and limits, seen by no other."""

    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # What its users read in their codes' messages: its Twilio Verify service's friendly name.
    display_name: Mapped[str] = mapped_column(String(30))
    # The Twilio Verify service it sends through, its own; None: the deployment's
    # TWILIO_VERIFY_SERVICE_SID (the default tenant, and tenants from before services per tenant).
    verify_service_sid: Mapped[str | None] = mapped_column(String(34))
    # Its choice of number checks through Twilio Lookup; None: the deployment's default.
    line_type_check: Mapped[bool | None]
    sim_swap_check: Mapped[bool | None]
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    # Comma-separated: what the key may do (shared.domain.Scope).
    scopes: Mapped[str] = mapped_column(String(64))
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
        Index("ix_verifications_created_at", "created_at"),
        Index("ix_verifications_tenant_id_destination_lookup", "tenant_id", "destination_lookup"),
        # One twostep verification per Twilio verification: Twilio answers a new verification to
        # a number that has a pending one with that one (its code again), so the earlier one is
        # superseded first (shared.services.delivery) and this makes sure of it.
        Index(
            "ix_verifications_pending_provider_sid",
            "provider_sid",
            unique=True,
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    status: Mapped[VerificationStatus] = mapped_column(
        _enum(VerificationStatus, "verification_status")
    )
    purpose: Mapped[Purpose] = mapped_column(_enum(Purpose, "verification_purpose"))
    channel: Mapped[Channel] = mapped_column(_enum(Channel, "verification_channel"))
    to_e164: Mapped[str] = mapped_column(EncryptedString)
    # Keyed hash of (tenant, destination): the earlier verifications to the same number.
    destination_lookup: Mapped[str | None] = mapped_column(String(64))
    destination_region: Mapped[str] = mapped_column(String(3))
    locale: Mapped[str | None] = mapped_column(String(16))
    user_id: Mapped[str | None] = mapped_column(String(128), index=True)
    client_ip: Mapped[str | None] = mapped_column(EncryptedString)
    api_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_keys.id"), index=True)

    provider_sid: Mapped[str | None] = mapped_column(String(34))
    # The Twilio Verify service that holds it (its tenant's when it was first sent).
    provider_service_sid: Mapped[str | None] = mapped_column(String(34))
    # Twilio may still hold it pending: until it is canceled there, a new verification to the
    # number would be answered with it (and its code) instead of a new one.
    provider_open: Mapped[bool] = mapped_column(default=False, server_default=false())
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
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    verification_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("verifications.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[CheckStatus] = mapped_column(_enum(CheckStatus, "check_status"))


class IdempotencyRecord(Base):
    """The first answer to a request made with an ``Idempotency-Key``, replayed for repeats."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
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
    __table_args__ = (
        Index("ix_factors_tenant_id_user_id", "tenant_id", "user_id"),
        Index("ix_factors_tenant_id_phone_lookup_status", "tenant_id", "phone_lookup", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    phone_e164: Mapped[str] = mapped_column(EncryptedString)
    # Keyed hash of (tenant, phone): "is this phone verified for another user?" without
    # decrypting every row.
    phone_lookup: Mapped[str] = mapped_column(String(64))
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
    """One of a user's one-time recovery codes: a selector in clear, to find the row, and a slow
    (scrypt) hash of the verifier, to check it — one hash per try."""

    __tablename__ = "recovery_codes"
    __table_args__ = (
        Index("ix_recovery_codes_tenant_id_user_id_selector", "tenant_id", "user_id", "selector"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    # None for codes made before selectors existed (checked the old way, hash by hash).
    selector: Mapped[str | None] = mapped_column(String(8))
    code_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Event(Base):
    """The audit trail: appended to, never changed. No codes; destinations masked."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_tenant_id_user_id_id", "tenant_id", "user_id", "id"),
        Index("ix_events_occurred_at", "occurred_at"),
    )

    # An integer key orders events as they were written and pages cheaply.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    occurred_at: Mapped[datetime]
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
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
    client_ip: Mapped[str | None] = mapped_column(EncryptedString)
    destination: Mapped[str | None] = mapped_column(String(24))  # masked, e.g. +1415•••••23
    verification_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    factor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class WebhookEndpoint(Base):
    """A tenant's receiver of webhook events, and the secret its deliveries are signed with."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant_id", "tenant_id"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    url: Mapped[str] = mapped_column(String(2048))
    # The events it hears of (WebhookEvent values); None: every one.
    events: Mapped[list[str] | None] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(EncryptedString)
    # After a rotation the old secret signs too, until this moment: receivers switch in time.
    previous_secret: Mapped[str | None] = mapped_column(EncryptedString)
    previous_secret_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None]


class WebhookDelivery(JobRow, Base):
    """One event for one endpoint: a job row like a send, retried until its deadline (24 h).
    ``provider_error_code`` holds the receiver's last HTTP status."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_tenant_id_created_at", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # No CHECK constraint, as for audit events: new kinds must not need a migration.
    event_type: Mapped[WebhookEvent] = mapped_column(
        Enum(
            WebhookEvent,
            native_enum=False,
            create_constraint=False,
            length=48,
            values_callable=lambda members: [member.value for member in members],
            validate_strings=True,
        )
    )
    # The event as it is POSTed (no number in clear, no code: views only).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus, "delivery_status"))
