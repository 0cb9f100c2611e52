"""Webhook endpoints and their deliveries (job rows whose outcome is the receiver's answer)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    select,
    update,
)

from shared.errors import AttemptError
from shared.kit.db.repository import JobRows, Repository
from shared.kit.db.statements import NO_ERROR, RELEASED, error_columns
from shared.webhooks.domain import DELIVERY_LIFECYCLE, DeliveryStatus
from shared.webhooks.models import WebhookDelivery, WebhookEndpoint


class WebhookDeliveryRepository(JobRows[WebhookDelivery]):
    """Webhook deliveries: job rows like checks (a claim keeps them "queued"), whose outcome is
    the receiver's answer."""

    model = WebhookDelivery
    lifecycle = DELIVERY_LIFECYCLE

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
                    **{**error_columns(error), "provider_error_code": http_status},
                    **RELEASED,
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
                **NO_ERROR,
                **RELEASED,
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


class WebhookEndpointRepository(Repository):
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
