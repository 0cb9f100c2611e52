"""A tenant's webhook endpoints, and one delivery row per event per endpoint."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Enum,
    ForeignKey,
    Index,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from shared.kit.crypto import EncryptedString
from shared.kit.db.base import Base, JobRow, enum_column
from shared.webhooks.domain import DeliveryStatus, WebhookEvent


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
    status: Mapped[DeliveryStatus] = mapped_column(enum_column(DeliveryStatus, "delivery_status"))
