"""A user's factors (phones and email addresses enrolled for 2SA) and recovery codes."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.kit.crypto import EncryptedString
from shared.kit.db.base import Base, enum_column
from shared.kit.destinations import DESTINATION_SEALED_LENGTH
from shared.two_step.domain import DisabledReason, FactorStatus
from shared.verifications.domain import Channel


class Factor(Base):
    """A user's phone, email address, authenticator app or passkey enrolled for two-step
    authentication."""

    __tablename__ = "factors"
    __table_args__ = (
        Index("ix_factors_tenant_id_user_id", "tenant_id", "user_id"),
        Index(
            "ix_factors_tenant_id_destination_lookup_status",
            "tenant_id",
            "destination_lookup",
            "status",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    user_id: Mapped[str] = mapped_column(String(128))
    # A phone number in E.164 or an email address (``channel`` says which).
    destination: Mapped[str] = mapped_column(EncryptedString(DESTINATION_SEALED_LENGTH))
    # Keyed hash of (tenant, destination): "is this phone or address verified for another
    # user?" without decrypting every row.
    destination_lookup: Mapped[str] = mapped_column(String(64))
    # A phone's country; None for an email address.
    destination_region: Mapped[str | None] = mapped_column(String(3))
    channel: Mapped[Channel] = mapped_column(enum_column(Channel, "factor_channel"))
    # The name the user knows an app or a passkey by ("Ada's phone"); None for a phone or an
    # address, whose masked destination says which it is.
    label: Mapped[str | None] = mapped_column(EncryptedString(512))
    status: Mapped[FactorStatus] = mapped_column(enum_column(FactorStatus, "factor_status"))
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
    disabled_reason: Mapped[DisabledReason | None] = mapped_column(
        enum_column(DisabledReason, "factor_disabled_reason")
    )


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
