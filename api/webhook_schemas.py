"""What the webhook routes take and answer: endpoints (their secret shown once) and deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.webhooks.domain import DeliveryStatus, WebhookEvent
from shared.webhooks.models import WebhookDelivery, WebhookEndpoint


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        min_length=8, max_length=2048, examples=["https://login.example.com/twostep-events"]
    )
    events: list[WebhookEvent] | None = Field(
        default=None, min_length=1, description="The events it hears of; omitted: every one"
    )


class WebhookEndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[WebhookEvent] | None
    created_at: datetime
    previous_secret_valid_until: datetime | None = Field(
        description="After a rotation, deliveries are signed with the old secret too until then"
    )

    @classmethod
    def from_row(cls, row: WebhookEndpoint) -> WebhookEndpointOut:
        return cls(
            id=row.id,
            url=row.url,
            events=[WebhookEvent(event) for event in row.events] if row.events else None,
            created_at=row.created_at,
            previous_secret_valid_until=row.previous_secret_until,
        )


class WebhookEndpointWithSecret(WebhookEndpointOut):
    secret: str = Field(description="Shown only now: verify every delivery's signature with it")

    @classmethod
    def with_secret(cls, row: WebhookEndpoint) -> WebhookEndpointWithSecret:
        return cls(**WebhookEndpointOut.from_row(row).model_dump(), secret=row.secret)


class WebhookEndpointsOut(BaseModel):
    endpoints: list[WebhookEndpointOut]


class WebhookDeliveryOut(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: WebhookEvent
    status: DeliveryStatus
    attempts: int
    last_http_status: int | None
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: WebhookDelivery) -> WebhookDeliveryOut:
        waiting = row.status is DeliveryStatus.QUEUED
        return cls(
            id=row.id,
            endpoint_id=row.endpoint_id,
            event_id=row.event_id,
            event_type=row.event_type,
            status=row.status,
            attempts=row.provider_attempts,
            last_http_status=row.provider_error_code,
            last_error=row.error_message,
            created_at=row.created_at,
            next_attempt_at=row.next_attempt_at if waiting else None,
            completed_at=row.completed_at,
        )


class WebhookDeliveriesOut(BaseModel):
    deliveries: list[WebhookDeliveryOut]
