"""Verifications and their checks: job rows a worker claims, calls the provider for, and settles.

No column ever holds a one-time code; task messages carry only these rows' ids. The destination
(a phone number or an email address) is stored encrypted, with a keyed hash beside it for
look-ups."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    Uuid,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.kit.crypto import EncryptedString
from shared.kit.db.base import Base, JobRow, enum_column
from shared.kit.destinations import DESTINATION_SEALED_LENGTH
from shared.verifications.domain import Channel, CheckStatus, Purpose, VerificationStatus


class Verification(JobRow, Base):
    __tablename__ = "verifications"
    __table_args__ = (
        Index("ix_verifications_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_verifications_status_expires_at", "status", "expires_at"),
        Index("ix_verifications_created_at", "created_at"),
        Index("ix_verifications_tenant_id_destination_lookup", "tenant_id", "destination_lookup"),
        # One twostep verification per Twilio verification: Twilio answers a new verification to
        # a number that has a pending one with that one (its code again), so the earlier one is
        # superseded first (shared.verifications.sends) and this makes sure of it.
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
        enum_column(VerificationStatus, "verification_status")
    )
    purpose: Mapped[Purpose] = mapped_column(enum_column(Purpose, "verification_purpose"))
    channel: Mapped[Channel] = mapped_column(enum_column(Channel, "verification_channel"))
    # A phone number in E.164, or an email address for the email channel.
    destination: Mapped[str] = mapped_column(EncryptedString(DESTINATION_SEALED_LENGTH))
    # Keyed hash of (tenant, destination): the earlier verifications to the same number.
    destination_lookup: Mapped[str | None] = mapped_column(String(64))
    # A phone's country; None for an email address.
    destination_region: Mapped[str | None] = mapped_column(String(3))
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
    resend_channel: Mapped[Channel | None] = mapped_column(enum_column(Channel, "resend_channel"))
    # A passkey's WebAuthn options for the browser as JSON, as Twilio made them (creation
    # options at enrolment, request options at login). Encrypted: they carry the name the user
    # knows the passkey by.
    passkey_options: Mapped[str | None] = mapped_column(EncryptedString(None))


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
    status: Mapped[CheckStatus] = mapped_column(enum_column(CheckStatus, "check_status"))

    @classmethod
    def queued_for(
        cls,
        verification: Verification,
        check_id: uuid.UUID,
        now: datetime,
        *,
        requeue_after: timedelta,
        deadline: timedelta,
    ) -> VerificationCheck:
        """A new check of ``verification``, queued for a worker: the sweeper publishes it again
        after ``requeue_after``, and it fails if not decided within ``deadline``."""
        return cls(
            id=check_id,
            tenant_id=verification.tenant_id,
            verification_id=verification.id,
            status=CheckStatus.QUEUED,
            provider_attempts=0,
            enqueue_count=1,
            next_attempt_at=now + requeue_after,
            created_at=now,
            updated_at=now,
            deadline_at=now + deadline,
        )
