"""One attempt at a webhook delivery (the worker's job): claim, sign, POST, settle."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import structlog

from shared.errors import AttemptError, ErrorCode
from shared.kit import metrics
from shared.kit.clock import Clock
from shared.kit.settings import Settings
from shared.unit_of_work import UnitOfWorkFactory
from shared.webhooks.domain import DeliveryStatus
from shared.webhooks.models import WebhookDelivery, WebhookEndpoint
from shared.webhooks.signatures import SIGNATURE_HEADER, sign

log = structlog.get_logger(__name__)


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for a stored payload."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


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
