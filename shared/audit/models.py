"""The audit trail's rows: appended to, never changed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.audit.domain import EventType
from shared.kit.crypto import EncryptedString
from shared.kit.db.base import Base


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
    # Masked: +1415•••••23, or a•••@ and a domain of up to 253 characters.
    destination: Mapped[str | None] = mapped_column(String(260))
    verification_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    factor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
