"""A tenant, its API keys and the first answers to its idempotent requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    ForeignKey,
    String,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.kit.db.base import Base


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
    # Its login site as WebAuthn's relying party (``shared.tenants.passkeys``); None: no
    # passkeys until it is set.
    passkey_rp_id: Mapped[str | None] = mapped_column(String(253))
    passkey_origins: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    # Comma-separated: what the key may do (shared.tenants.domain.Scope).
    scopes: Mapped[str] = mapped_column(String(64))
    # SHA-256 of the whole key: keys are 256-bit random, so a fast hash is enough to store them.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


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
