"""In the transaction that commits a change, one delivery row per interested endpoint: never a
change without its deliveries, never a delivery without its change."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

from cachetools import TTLCache

from shared.kit.changes import Announcement, Change
from shared.kit.clock import Clock
from shared.kit.jobs import Job
from shared.kit.settings import Settings
from shared.unit_of_work import UnitOfWork
from shared.webhooks.domain import DeliveryStatus, WebhookEvent
from shared.webhooks.models import WebhookDelivery

_CHECK_EVENTS = {"rejected": WebhookEvent.CHECK_REJECTED}


# An endpoint registered a moment ago hears of events from then on, within this long.
_ENDPOINTS_CACHE_SECONDS = 5.0


def event_of(change: Change) -> WebhookEvent | None:
    """The webhook event a change is, if any (a verification's new state, a rejected check)."""
    if change.view is None:
        return None
    status = str(change.view["status"])
    if change.kind == "verification":
        try:
            return WebhookEvent(f"verification.{status}")
        except ValueError:
            return None  # queued, sending: not news
    return _CHECK_EVENTS.get(status) if change.kind == "check" else None


# What the API answers but a delivery never carries: its payload waits in SQL in clear, and a
# passkey's options and an app's or a passkey's name are what the user calls their device.
_KEPT_BACK = frozenset({"creation_options", "request_options", "label"})


def announce(
    uow: UnitOfWork, tenant_id: uuid.UUID, event: WebhookEvent, user_id: str, **data: object
) -> None:
    """Tell the tenant's webhook endpoints of something that happened to a user's account
    (ASVS 2.2.3, 2.5.5): written with the change, as every delivery is."""
    uow.announce(Announcement(tenant_id, event, {"user_id": user_id, **data}))


class WebhookOutbox:
    """Turns a unit of work's changes into deliveries for its tenants' endpoints."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._endpoints: TTLCache[uuid.UUID, list[tuple[uuid.UUID, set[str] | None]]] = TTLCache(
            10_000, ttl=_ENDPOINTS_CACHE_SECONDS
        )

    async def record(
        self, uow: UnitOfWork, changes: Sequence[Change], announcements: Sequence[Announcement]
    ) -> None:
        news = [
            Announcement(change.tenant_id, event, change.view)
            for change in changes
            if (event := event_of(change)) and change.tenant_id and change.view is not None
        ]
        for announcement in [*news, *announcements]:
            for endpoint_id, wanted in await self._endpoints_of(uow, announcement.tenant_id):
                if wanted is None or announcement.event in wanted:
                    delivery = self._delivery(endpoint_id, announcement)
                    await uow.webhook_deliveries.insert(delivery)
                    uow.enqueue_after_commit(Job.deliver_webhook(delivery.id))

    async def reaches_endpoints(
        self, tenant_id: uuid.UUID, reading: Callable[[], UnitOfWork]
    ) -> bool:
        """Whether the tenant has an active endpoint, as ``record`` would find (cached alike)."""
        known = self._endpoints.get(tenant_id)
        if known is None:
            async with reading() as uow:
                known = await self._endpoints_of(uow, tenant_id)
        return bool(known)

    async def _endpoints_of(
        self, uow: UnitOfWork, tenant_id: uuid.UUID
    ) -> list[tuple[uuid.UUID, set[str] | None]]:
        known = self._endpoints.get(tenant_id)
        if known is None:
            active = await uow.webhook_endpoints.active(tenant_id)
            known = [(e.id, set(e.events) if e.events else None) for e in active]
            self._endpoints[tenant_id] = known
        return known

    def _delivery(self, endpoint_id: uuid.UUID, announcement: Announcement) -> WebhookDelivery:
        now = self._clock.now()
        event_id, event = uuid.uuid4(), WebhookEvent(announcement.event)
        return WebhookDelivery(
            id=uuid.uuid4(),
            tenant_id=announcement.tenant_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=event,
            payload={
                "id": str(event_id),
                "type": event.value,
                "created_at": now.isoformat().replace("+00:00", "Z"),
                "data": {k: v for k, v in announcement.data.items() if k not in _KEPT_BACK},
            },
            status=DeliveryStatus.QUEUED,
            provider_attempts=0,
            enqueue_count=1,
            next_attempt_at=now + self._settings.requeue_after,
            created_at=now,
            updated_at=now,
            deadline_at=now + timedelta(seconds=self._settings.webhook_deadline_seconds),
        )
