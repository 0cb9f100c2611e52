"""The worker's side of a verification's provider calls: its dependencies, the fleet-wide gate
every call goes through, and ending a verification at the provider.

Sends and checks are attempts at a job row, run by the one attempt engine
(``shared.kit.attempts``); every provider call goes through the fleet-wide gate. A job whose
earlier call's answer was lost looks at the provider before it acts again.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from typing import TypeVar

import structlog

from shared.errors import ProviderError, ProviderTransientError, ServiceUnavailable
from shared.kit import metrics
from shared.kit.attempts import Attempts, RetryPolicy, Wait
from shared.kit.clock import Clock
from shared.kit.crypto import Keyring
from shared.kit.settings import Settings
from shared.limits.ports import Lockout, ProviderGate
from shared.tenants.service import TenantDirectory
from shared.unit_of_work import UnitOfWork, UnitOfWorkFactory
from shared.verifications.codes import CodeStash
from shared.verifications.models import Verification
from shared.verifications.numbers import NumberChecks
from shared.verify.port import CodeProvider

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Longest a job waits in-task at the gate before it goes back to the queue instead.
_MAX_INLINE_GATE_WAIT = 5.0
# Twilio Verify's longest code lifetime: past it, Twilio has ended a verification itself.
PROVIDER_LIFETIME = timedelta(minutes=10, seconds=30)

ApprovalListener = Callable[[UnitOfWork, Verification, datetime], Awaitable[None]]


@dataclass(frozen=True)
class ProviderCalls:
    """What a worker's verification jobs use, built once per process: the stores, the
    provider's ports behind the fleet-wide gate, and who hears of an approval."""

    uow_factory: UnitOfWorkFactory
    verify: CodeProvider
    stash: CodeStash
    gate: ProviderGate
    lockout: Lockout
    settings: Settings
    clock: Clock
    tenants: TenantDirectory
    numbers: NumberChecks
    keyring: Keyring
    # Called in the transaction that approves a verification (an enrolment verifies its
    # factor: shared.two_step): verifications know nothing of who listens.
    on_approved: Sequence[ApprovalListener] = ()

    @cached_property
    def attempts(self) -> Attempts[UnitOfWork]:
        settings = self.settings
        backoff = RetryPolicy(
            settings.retry_backoff_base_seconds, settings.retry_backoff_max_seconds
        )
        return Attempts(self.uow_factory, self.clock, backoff, settings.requeue_after)

    async def close_at_provider(self, verification: Verification, *, quietly: bool = False) -> None:
        """Cancel the verification at the provider if it may still be open there. Quietly: a
        failure is logged and left (the next send to the number cancels it before it goes)."""
        sid = verification.provider_sid
        if sid is None or not verification.provider_open:
            return
        service = verification.provider_service_sid
        if service is None:
            service = (await self.tenants.profile(verification.tenant_id)).service_sid
        if quietly:
            if not await self.cancel_quietly(service, sid, verification.id):
                return
        else:
            await self.through_gate(lambda: self.verify.cancel_verification(service, sid))
        await self._closed(verification)

    async def cancel_quietly(self, service: str, sid: str, verification_id: uuid.UUID) -> bool:
        try:
            await self.through_gate(lambda: self.verify.cancel_verification(service, sid))
        except (ProviderError, Wait, ServiceUnavailable) as exc:
            log.warning(
                "provider.cancel_failed",
                verification_id=str(verification_id),
                error=type(exc).__name__,
            )
            return False
        return True

    async def _closed(self, verification: Verification) -> None:
        async with self.uow_factory.single_statements() as uow:
            await uow.verifications.provider_closed([verification.id])

    async def through_gate(self, call: Callable[[], Awaitable[T]]) -> T:
        """Make one provider call in a slot of the fleet-wide gate."""
        slot = await self._enter_gate()
        failed = True
        try:
            answer = await call()
            failed = False
            return answer
        except ProviderError as exc:
            failed = isinstance(exc, ProviderTransientError)  # a refusal is an answer
            raise
        finally:
            self.gate.give_back(slot, failed=failed)

    async def _enter_gate(self) -> str:
        """Wait at the gate in-task while the wait is short; a longer one sends the job back to
        the queue (``Wait``) without counting it as an attempt."""
        budget = min(_MAX_INLINE_GATE_WAIT, self.settings.claim_lease_seconds / 3)
        waited = 0.0
        while True:
            try:
                entered = await self.gate.enter()
            except ServiceUnavailable as exc:
                # No gate, no call: the fleet must never exceed the account's rate.
                raise ProviderTransientError("the provider gate is unavailable") from exc
            if isinstance(entered, str):
                return entered
            if waited + entered > budget:
                raise Wait(entered, "throttled at the provider gate")
            metrics.PROVIDER_THROTTLE_WAITS.inc()
            # Jitter: the jobs refused together must not all come back together.
            wait = entered * random.uniform(1.0, 1.5)
            await self.clock.sleep(wait)
            waited += wait
