"""Signed webhooks: a login server hears of a verification's or a check's new state without
asking.

- ``Webhooks`` (the API): a tenant's endpoints (secret shown once; rotation keeps the old one
  valid for a while), its deliveries, a redelivery.
- ``WebhookOutbox`` (API and workers): in the transaction that commits a change, one delivery
  row per interested endpoint — never a change without its deliveries, never a delivery
  without its change. Their jobs go out after the commit.
- ``WebhookSender`` (workers): one attempt at a delivery — claim, sign, POST, settle — retried
  with backoff until the delivery's deadline (24 h); the sweeper republishes it when it is due.
  A 2xx is delivered. Receivers may see an event twice (a worker lost between the POST and
  the commit): they dedupe by the event's ``id``.
"""

from __future__ import annotations

import json
import random
import secrets
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog
from cachetools import TTLCache

from shared import metrics
from shared.changes import Announcement, Change
from shared.clock import Clock
from shared.db.models import ApiKey, WebhookDelivery, WebhookEndpoint
from shared.db.session import UnitOfWork, UnitOfWorkFactory
from shared.domain import AttemptError, DeliveryStatus, ErrorCode, WebhookEvent
from shared.errors import InvalidInput, NotFound
from shared.jobs import Job
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, sign
from shared.startup import is_loopback_url
from shared.webhook_http import is_ip_literal, is_public_address

log = structlog.get_logger(__name__)

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, like the API keys' tsk_
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


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for a stored payload."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def url_pattern(settings: Settings) -> str:
    """The webhook URLs this configuration takes, for the OpenAPI document: ASCII, https (http
    too in development), a host without userinfo or brackets. A little stricter than the checks
    (no IPv6 literal, no IRI); a private host is refused beyond it, where the checks say so."""
    scheme = "https?" if settings.development else "https"
    return rf"^{scheme}://[A-Za-z0-9._~%!$&'()*+,;=-]+(:[0-9]{{1,5}})?([/?#][\x21-\x7e]*)?$"


@dataclass(frozen=True)
class Webhooks:
    """The API's side. Every method works on the key's tenant only."""

    settings: Settings
    clock: Clock

    def _checked_url(self, url: str) -> str:
        not_a_url = InvalidInput("a webhook URL is an http(s) URL of at most 2048 characters")
        try:
            parts = urlsplit(url)
        except ValueError:  # an unclosed "[", a host that NFKC turns into "/", "#", "@"…
            raise not_a_url from None
        if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
            raise not_a_url
        if parts.scheme == "http" and not (self.settings.development or is_loopback_url(url)):
            raise InvalidInput("a webhook URL must be https (http only on loopback)")
        private = parts.hostname == "localhost" or (
            is_ip_literal(parts.hostname) and not is_public_address(parts.hostname)
        )
        if private and not self.settings.webhooks_may_reach_private_networks:
            raise InvalidInput(
                "a webhook URL must reach a public address (TWOSTEP_WEBHOOK_PRIVATE_NETWORKS)"
            )
        return url

    async def create(
        self, uow: UnitOfWork, api_key: ApiKey, url: str, events: Sequence[WebhookEvent] | None
    ) -> WebhookEndpoint:
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            tenant_id=api_key.tenant_id,
            url=self._checked_url(url),
            events=sorted({event.value for event in events}) if events else None,
            secret=SECRET_PREFIX + secrets.token_urlsafe(32),
            created_at=self.clock.now(),
        )
        uow.webhook_endpoints.add(endpoint)
        return endpoint

    async def get(
        self, uow: UnitOfWork, api_key: ApiKey, endpoint_id: uuid.UUID
    ) -> WebhookEndpoint:
        endpoint = await uow.webhook_endpoints.get_of_tenant(api_key.tenant_id, endpoint_id)
        if endpoint is None:
            raise NotFound(f"no webhook endpoint {endpoint_id}")
        return endpoint

    async def delete(self, uow: UnitOfWork, api_key: ApiKey, endpoint_id: uuid.UUID) -> None:
        if not await uow.webhook_endpoints.delete(api_key.tenant_id, endpoint_id, self.clock.now()):
            raise NotFound(f"no webhook endpoint {endpoint_id}")

    async def rotate(
        self, uow: UnitOfWork, api_key: ApiKey, endpoint_id: uuid.UUID
    ) -> WebhookEndpoint:
        """A new secret, shown once; the old one still signs for the overlap."""
        endpoint = await self.get(uow, api_key, endpoint_id)
        overlap = timedelta(seconds=self.settings.webhook_rotation_overlap_seconds)
        await uow.webhook_endpoints.rotate(
            endpoint,
            SECRET_PREFIX + secrets.token_urlsafe(32),
            old_until=self.clock.now() + overlap,
        )
        return endpoint

    async def redeliver(
        self, uow: UnitOfWork, api_key: ApiKey, delivery_id: uuid.UUID
    ) -> WebhookDelivery:
        now = self.clock.now()
        deadline = now + timedelta(seconds=self.settings.webhook_deadline_seconds)
        delivery = await uow.deliveries.redeliver(
            api_key.tenant_id, delivery_id, now=now, deadline=deadline
        )
        if delivery is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        uow.enqueue_after_commit(Job.deliver_webhook(delivery.id))
        return delivery


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
                if wanted is None or announcement.event.value in wanted:
                    delivery = self._delivery(endpoint_id, announcement)
                    await uow.deliveries.insert(delivery)
                    uow.enqueue_after_commit(Job.deliver_webhook(delivery.id))

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
        event_id = uuid.uuid4()
        return WebhookDelivery(
            id=uuid.uuid4(),
            tenant_id=announcement.tenant_id,
            endpoint_id=endpoint_id,
            event_id=event_id,
            event_type=announcement.event,
            payload={
                "id": str(event_id),
                "type": announcement.event.value,
                "created_at": now.isoformat().replace("+00:00", "Z"),
                "data": announcement.data,
            },
            status=DeliveryStatus.QUEUED,
            provider_attempts=0,
            enqueue_count=1,
            next_attempt_at=now + self._settings.requeue_after,
            created_at=now,
            updated_at=now,
            deadline_at=now + timedelta(seconds=self._settings.webhook_deadline_seconds),
        )


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the HTTP status; raise OSError or TimeoutError without one."""
        ...


@dataclass(frozen=True)
class WebhookSender:
    """One attempt at one delivery (the worker's job)."""

    uow_factory: UnitOfWorkFactory
    poster: Poster
    settings: Settings
    clock: Clock
    jitter: Callable[[float, float], float] = random.uniform

    async def attempt(self, delivery_id: uuid.UUID) -> None:
        now = self.clock.now()
        async with self.uow_factory.single_statements() as uow:
            delivery = await uow.deliveries.claim(
                delivery_id, now=now, until=now + self.settings.claim_lease
            )
            if delivery is None:
                return  # delivered, given up, or another worker has it
            endpoint = await uow.webhook_endpoints.get(delivery.endpoint_id)
        token = delivery.claim_token
        assert token is not None
        if endpoint is None or endpoint.deleted_at is not None or now >= delivery.deadline_at:
            reason = "past its deadline" if endpoint else "its endpoint was deleted"
            await self._settle(delivery, token, DeliveryStatus.FAILED, None, reason)
            return
        status, problem = await self._post(endpoint, delivery)
        if status is not None and 200 <= status < 300:
            await self._settle(delivery, token, DeliveryStatus.DELIVERED, status, None)
        else:
            await self._retry_or_give_up(delivery, token, status, problem)

    async def _post(
        self, endpoint: WebhookEndpoint, delivery: WebhookDelivery
    ) -> tuple[int | None, str]:
        body = body_of(delivery.payload)
        now = self.clock.now()
        signing = [endpoint.secret]
        until = endpoint.previous_secret_until
        if endpoint.previous_secret and until is not None and now < until:
            signing.append(endpoint.previous_secret)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(signing, body, int(now.timestamp())),
            "Twostep-Event-Id": str(delivery.event_id),
        }
        try:
            status = await self.poster.post(endpoint.url, body, headers)
        except (OSError, TimeoutError) as exc:
            return None, f"no answer: {str(exc) or type(exc).__name__}"
        return status, f"HTTP {status}"

    async def _settle(
        self,
        delivery: WebhookDelivery,
        token: uuid.UUID,
        status: DeliveryStatus,
        http_status: int | None,
        problem: str | None,
    ) -> None:
        error = AttemptError(ErrorCode.PROVIDER_REJECTED, problem) if problem else None
        async with self.uow_factory() as uow:
            await uow.deliveries.settle(
                delivery.id,
                token,
                status=status,
                http_status=http_status,
                error=error,
                now=self.clock.now(),
            )
        outcome = "delivered" if status is DeliveryStatus.DELIVERED else "failed"
        metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
        log.info(
            f"webhook.{outcome}",
            delivery_id=str(delivery.id),
            event_type=delivery.event_type.value,
            attempts=delivery.provider_attempts,
            http_status=http_status,
        )

    async def _retry_or_give_up(
        self, delivery: WebhookDelivery, token: uuid.UUID, status: int | None, problem: str
    ) -> None:
        now = self.clock.now()
        left = (delivery.deadline_at - now).total_seconds()
        if left <= 0:
            await self._settle(delivery, token, DeliveryStatus.FAILED, status, problem)
            return
        delay = min(self._backoff(delivery.provider_attempts), left)
        async with self.uow_factory() as uow:
            await uow.deliveries.release_for_retry(
                delivery.id,
                token,
                error=AttemptError(ErrorCode.PROVIDER_UNAVAILABLE, problem, status),
                lost_call_at=None,
                next_look=now + timedelta(seconds=delay),
                now=now,
            )
        metrics.WEBHOOK_DELIVERIES.labels(outcome="retry").inc()
        log.info(
            "webhook.retry",
            delivery_id=str(delivery.id),
            attempts=delivery.provider_attempts,
            problem=problem,
            retry_in=round(delay, 1),
        )

    def _backoff(self, attempts: int) -> float:
        settings = self.settings
        ceiling = min(
            settings.webhook_retry_max_seconds,
            settings.webhook_retry_base_seconds * (1 << min(max(attempts - 1, 0), 30)),
        )
        return ceiling / 2 + self.jitter(0, ceiling / 2)
