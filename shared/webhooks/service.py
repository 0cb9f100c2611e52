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

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from shared.errors import InvalidInput, NotFound
from shared.kit.clock import Clock
from shared.kit.jobs import Job
from shared.kit.network import is_loopback_url
from shared.kit.settings import Settings
from shared.tenants.models import ApiKey
from shared.unit_of_work import UnitOfWork
from shared.webhooks.domain import WebhookEvent
from shared.webhooks.http import is_ip_literal, is_public_address
from shared.webhooks.models import WebhookDelivery, WebhookEndpoint

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, like the API keys' tsk_


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
        delivery = await uow.webhook_deliveries.redeliver(
            api_key.tenant_id, delivery_id, now=now, deadline=deadline
        )
        if delivery is None:
            raise NotFound(f"no webhook delivery {delivery_id}")
        uow.enqueue_after_commit(Job.deliver_webhook(delivery.id))
        return delivery
