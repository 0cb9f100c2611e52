"""One attempt at a webhook delivery (the worker's job): claim, sign, POST, settle."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from shared.errors import AttemptError, ErrorCode, ProviderError, ProviderTransientError
from shared.kit import metrics
from shared.kit.attempts import Attempt, Attempts, RetryPolicy, claim
from shared.kit.clock import Clock
from shared.kit.settings import Settings
from shared.unit_of_work import UnitOfWork, UnitOfWorkFactory
from shared.webhooks.domain import DeliveryStatus
from shared.webhooks.models import WebhookDelivery, WebhookEndpoint
from shared.webhooks.repository import WebhookDeliveryRepository
from shared.webhooks.signatures import SIGNATURE_HEADER, sign


def body_of(payload: dict[str, Any]) -> bytes:
    """The exact bytes POSTed (and signed) for a stored payload."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


class Poster(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST and return the HTTP status; raise OSError or TimeoutError without one."""
        ...


@dataclass(frozen=True)
class WebhookSender:
    """One attempt at one delivery (the worker's job), on the one attempt engine. Its retries
    are the sweeper's: a delivery may wait up to an hour for its next try, longer than a
    broker should hold a message."""

    uow_factory: UnitOfWorkFactory
    poster: Poster
    settings: Settings
    clock: Clock
    jitter: Callable[[float, float], float] = random.uniform

    @cached_property
    def attempts(self) -> Attempts[UnitOfWork]:
        settings = self.settings
        policy = RetryPolicy(
            settings.webhook_retry_base_seconds,
            settings.webhook_retry_max_seconds,
            through_queue=False,
        )
        return Attempts(self.uow_factory, self.clock, policy, settings.requeue_after, self.jitter)

    async def attempt(self, delivery_id: uuid.UUID) -> None:
        await self.attempts.run(_Attempt(self, delivery_id))


class _Attempt(Attempt[UnitOfWork, WebhookDelivery, int]):
    kind = "webhook"
    id_field = "delivery_id"
    endpoint: WebhookEndpoint | None

    def __init__(self, sender: WebhookSender, delivery_id: uuid.UUID) -> None:
        super().__init__(delivery_id)
        self.sender = sender

    def rows(self, uow: UnitOfWork) -> WebhookDeliveryRepository:
        return uow.webhook_deliveries

    async def begin(self) -> bool:
        sender = self.sender
        now = sender.clock.now()
        async with sender.uow_factory.single_statements() as uow:
            until = now + sender.settings.claim_lease
            if not await claim(self, uow, now, until):
                return False  # delivered, given up, or another worker has it
        endpoint = self.endpoint
        if endpoint is None or endpoint.deleted_at is not None or now >= self.claimed.deadline_at:
            reason = "past its deadline" if endpoint else "its endpoint was deleted"
            await self._settle(DeliveryStatus.FAILED, None, reason)
            return False
        return True

    async def claim_row(
        self, uow: UnitOfWork, now: datetime, until: datetime
    ) -> WebhookDelivery | None:
        """The delivery, claimed, then its endpoint."""
        delivery = await uow.webhook_deliveries.claim(self.row_id, now=now, until=until)
        if delivery is not None:
            self.endpoint = await uow.webhook_endpoints.get(delivery.endpoint_id)
        return delivery

    async def call(self) -> int:
        """POST it, signed; a 2xx is the answer, anything else (or nothing) is retried."""
        endpoint, delivery, now = self.endpoint, self.claimed, self.sender.clock.now()
        assert endpoint is not None
        body = body_of(delivery.payload)
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
            status = await self.sender.poster.post(endpoint.url, body, headers)
        except (OSError, TimeoutError) as exc:
            raise ProviderTransientError(f"no answer: {str(exc) or type(exc).__name__}") from exc
        if not 200 <= status < 300:
            # The receiver's HTTP status is its "provider code": what the delivery records.
            raise ProviderTransientError(f"HTTP {status}", provider_code=status, status=status)
        return status

    async def answered(self, answer: int) -> None:
        await self._settle(DeliveryStatus.DELIVERED, answer, None)

    async def refused(self, exc: ProviderError) -> None:
        await self._settle(DeliveryStatus.FAILED, exc.status, exc.message)

    async def give_up(self, error: AttemptError) -> None:
        await self._settle(DeliveryStatus.FAILED, error.provider_code, error.message)

    async def _settle(
        self, status: DeliveryStatus, http_status: int | None, problem: str | None
    ) -> None:
        sender, delivery = self.sender, self.claimed
        error = AttemptError(ErrorCode.PROVIDER_REJECTED, problem) if problem else None
        async with sender.uow_factory() as uow:
            await uow.webhook_deliveries.settle(
                delivery.id,
                self.token,
                status=status,
                http_status=http_status,
                error=error,
                now=sender.clock.now(),
            )
        outcome = "delivered" if status is DeliveryStatus.DELIVERED else "failed"
        metrics.WEBHOOK_DELIVERIES.labels(outcome=outcome).inc()
        self.log.info(
            f"webhook.{outcome}",
            event_type=delivery.event_type.value,
            attempts=delivery.provider_attempts,
            http_status=http_status,
        )
