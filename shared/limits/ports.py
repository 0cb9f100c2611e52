"""The limits' ports and their words: who sends where, whose guesses count, what a lock is."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import redis.asyncio as redis

from shared.errors import ServiceUnavailable

if TYPE_CHECKING:
    from shared.tenants.models import ApiKey


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Who asks for a code to be sent where. ``verification_id`` is the one (re)sent; a request
    with no ``destination`` is a send that cannot happen (a challenge for a user without 2SA),
    counted against the caller's limits all the same so that asking costs what sending does."""

    tenant_id: uuid.UUID
    api_key_id: uuid.UUID
    destination: str | None  # E.164, or an email address
    region: str | None  # a phone's country; None for an email address
    verification_id: uuid.UUID | None = None
    user_id: str | None = None
    client_ip: str | None = None

    @classmethod
    def to_nobody(
        cls,
        api_key: ApiKey,
        user_id: str | None,
        client_ip: str | None,
        verification_id: uuid.UUID | None = None,
    ) -> SendRequest:
        """A request that sends no message but costs what a send does: counted per user,
        client address, key and in all, never per destination or country."""
        return cls(api_key.tenant_id, api_key.id, None, None, verification_id, user_id, client_ip)


@dataclass(frozen=True, slots=True)
class LimitInfo:
    name: str
    limit: str
    applies_to: str


class SendLimits(Protocol):
    async def admit(self, request: SendRequest) -> None:
        """Count the send against every limit, or raise RateLimited and count nothing."""
        ...

    def describe(self) -> list[LimitInfo]: ...


class Outcome(StrEnum):
    """How a reserved guess ended."""

    RIGHT = "right"
    WRONG = "wrong"
    VOID = "void"  # no answer (lost code, provider down, too late): it counts for nothing


@dataclass(frozen=True, slots=True)
class Guesser:
    """Whose guesses a code check counts against: the user, when there is one; otherwise the
    number the code went to and the client address that asked for it."""

    tenant_id: uuid.UUID
    user_id: str | None
    destination: str | None = None
    client_ip: str | None = None

    @classmethod
    def of(
        cls,
        tenant_id: uuid.UUID,
        user_id: str | None,
        destination: str | None,
        client_ip: str | None,
    ) -> Guesser:
        """The guesser of a verification: its user's alone when it has one, so that guesses on
        one user's verification never lock out another user who uses the same number."""
        if user_id is not None:
            return cls(tenant_id, user_id)
        return cls(tenant_id, None, destination, client_ip)


@dataclass(frozen=True, slots=True)
class Lock:
    seconds: float
    hard: bool = False  # until an admin key releases it


class Lockout(Protocol):
    async def check(self, guesser: Guesser) -> None:
        """Raise UserLocked if the guesser is locked out now (before anything is sent)."""
        ...

    async def reserve(self, guesser: Guesser, attempt: str, ttl_seconds: float) -> None:
        """Hold one failure's room for ``attempt``, or raise UserLocked (locked out, or as many
        guesses in flight as may still fail before the next lock)."""
        ...

    async def settle(self, guesser: Guesser, attempt: str, outcome: Outcome) -> Lock | None:
        """Record how a reserved guess ended; returns the lock now in force, if a wrong code
        caused one."""
        ...

    async def release(self, guesser: Guesser) -> None:
        """Lift every lock and forget every failure (an admin's decision)."""
        ...


class ActionLimit(Protocol):
    async def admit(self, subject: str) -> None:
        """Count one action by ``subject``, or raise RateLimited."""
        ...


@dataclass(frozen=True, slots=True)
class Guards:
    """What the API's use cases consult before they write anything."""

    sends: SendLimits
    lockout: Lockout
    recovery_code_sets: ActionLimit


class ProviderGate(Protocol):
    async def enter(self) -> str | float:
        """Take a slot for one provider call now (its id), or say how many seconds to wait."""
        ...

    async def leave(self, slot: str, *, failed: bool = False) -> None:
        """Give the slot back; ``failed``: the provider did not answer usefully (a timeout, a
        5xx, a throttle), which ``twostep status`` reports as its recent error rate."""
        ...

    def give_back(self, slot: str, *, failed: bool = False) -> None:
        """``leave``, without waiting for it: the slot goes back with the next commands the
        process sends anyway (the job's change notice, milliseconds later) instead of in a
        round trip of its own. One that cannot be given back frees itself when its lease runs
        out."""
        ...


@contextmanager
def redis_or_unavailable() -> Iterator[None]:
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise ServiceUnavailable(
            "limits cannot be checked right now (Redis is unreachable); try again shortly"
        ) from exc
