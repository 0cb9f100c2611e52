"""Number checks through Twilio Lookup v2, before a code goes out (NIST SP 800-63B 5.1.3.3).

SMS and voice codes are *restricted* authenticators: a VoIP number is anybody's for a few cents,
and a SIM swap hands a victim's codes to whoever did it. So, where a tenant asks for it, a
number's line type is looked up at enrolment (only allowed types may enrol; the answer is kept,
keyed by the number's hash, since it rarely changes) and a SIM swap is asked at every SMS or
voice login (that is its point). Both are provider calls the worker makes through the
fleet-wide gate like any other; a number that may not get the code fails its verification with
the reason, and recovery codes stay open.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

import redis.asyncio as redis

from shared.errors import ErrorCode, ProviderPermanentError
from shared.kit.clock import Clock
from shared.kit.crypto import Keyring
from shared.kit.lookups import destination_lookup
from shared.kit.settings import Settings
from shared.verifications.models import Verification
from shared.verify.port import LineFacts, NumberLookup

T = TypeVar("T")
Through = Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]


class LineTypes(Protocol):
    """A cache of numbers' line types, by the keyed hash of (tenant, number)."""

    async def get(self, lookup: str) -> str | None: ...

    async def put(self, lookup: str, line_type: str) -> None: ...


class RedisLineTypes:
    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._redis = client
        self._key = settings.redis_key("line-type:{}")
        self._ttl = int(settings.line_type_cache_seconds)

    async def get(self, lookup: str) -> str | None:
        try:
            value = await self._redis.get(self._key.format(lookup))
        except redis.RedisError:
            return None  # a cache: without it, ask Lookup
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, lookup: str, line_type: str) -> None:
        with contextlib.suppress(redis.RedisError):  # then asked again next time
            await self._redis.set(self._key.format(lookup), line_type, ex=self._ttl)


@dataclass(frozen=True)
class NumberChecks:
    lookup: NumberLookup
    line_types: LineTypes
    keyring: Keyring
    settings: Settings
    clock: Clock

    async def refusal(
        self,
        verification: Verification,
        *,
        line_type: bool,
        sim_swap: bool,
        through: Through[LineFacts],
    ) -> ProviderPermanentError | None:
        """Why the verification's number may not get its code, or None. Lookup's errors reach
        the caller: a transient one is retried, a permanent one fails the send (closed)."""
        e164 = verification.destination
        key = destination_lookup(self.keyring, verification.tenant_id, e164)
        known = await self.line_types.get(key) if line_type else None
        ask_line_type = line_type and known is None
        if ask_line_type or sim_swap:
            facts = await through(
                lambda: self.lookup.look_up(e164, line_type=ask_line_type, sim_swap=sim_swap)
            )
            if ask_line_type and facts.line_type:
                await self.line_types.put(key, facts.line_type)
        else:
            facts = LineFacts()
        if known is not None:
            facts = LineFacts(known, facts.last_sim_swap_at, facts.swapped_in_period)
        window = timedelta(seconds=self.settings.sim_swap_window_seconds)
        return number_refusal(
            facts,
            line_type=line_type,
            sim_swap=sim_swap,
            allowed_line_types=self.settings.allowed_line_types,
            swapped_since=self.clock.now() - window,
        )


def number_refusal(
    facts: LineFacts,
    *,
    line_type: bool,
    sim_swap: bool,
    allowed_line_types: frozenset[str],
    swapped_since: datetime,
) -> ProviderPermanentError | None:
    """Why a number may not get a code, from what Lookup said of it; None when it may."""
    if line_type and facts.line_type not in allowed_line_types:
        return ProviderPermanentError(
            f"the number's line type ({facts.line_type or 'unknown'}) may not receive codes",
            reason=ErrorCode.LINE_TYPE_NOT_ALLOWED,
        )
    if not sim_swap:
        return None
    swapped = (
        facts.last_sim_swap_at >= swapped_since
        if facts.last_sim_swap_at is not None
        else bool(facts.swapped_in_period)
    )
    if swapped:
        return ProviderPermanentError(
            "the number's SIM changed recently: no code by SMS or call for now; "
            "use a recovery code or another factor",
            reason=ErrorCode.SIM_SWAP_DETECTED,
        )
    return None
