"""Use cases on the worker's side: send a code (the first time or again), check a code, and end
a verification at the provider once it is over here. Each runs on the one attempt engine
(``shared.kit.attempts``); every provider call goes through the fleet-wide gate."""

from __future__ import annotations

import uuid

import structlog

from shared.errors import ProviderTransientError, ServiceUnavailable
from shared.kit.attempts import RetryLater, Wait
from shared.verifications.checks import Check
from shared.verifications.provider_calls import PROVIDER_LIFETIME, ProviderCalls
from shared.verifications.sends import Send

log = structlog.get_logger(__name__)


class CodeJobs(ProviderCalls):
    """Built once per worker process."""

    async def send_code(self, verification_id: uuid.UUID) -> RetryLater | None:
        return await self.attempts.run(Send(self, verification_id))

    async def check_code(self, check_id: uuid.UUID) -> RetryLater | None:
        return await self.attempts.run(Check(self, check_id))

    async def close_verification(
        self, verification_id: uuid.UUID, attempt: int = 0
    ) -> RetryLater | None:
        """A verification ended here (canceled, used up) is canceled at the provider too, so
        that a new one to its number starts afresh; retried until the provider's own expiry
        would have ended it anyway."""
        async with self.uow_factory.reading() as read:
            verification = await read.verifications.get(verification_id)
        if verification is None or not verification.status.is_final:
            return None
        try:
            await self.close_at_provider(verification)
        except (ProviderTransientError, Wait, ServiceUnavailable) as exc:
            if self.clock.now() >= verification.created_at + PROVIDER_LIFETIME:
                await self._closed(verification)
                return None
            delay = self.attempts.policy.backoff(attempt + 1, None, self.attempts.jitter)
            log.warning(
                "close.retry", verification_id=str(verification_id), error=type(exc).__name__
            )
            return RetryLater(countdown=delay)
        return None
