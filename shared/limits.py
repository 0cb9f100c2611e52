"""Abuse protection: limits shared by every process, counted in Redis, failing closed.

Three ports and their Redis adapters, each decision one atomic Lua call on Redis's own clock
(so the processes' clocks do not matter, and a decision costs one round trip):

- ``SendLimits`` — before anything is enqueued, a send must pass every limit: per destination,
  per user, per client IP, per API key, per destination country per day, and a cooldown per
  verification. Each limit is a moving window (a list of the latest send times, as the
  ``limits`` library keeps it; its ``parse`` reads our settings). All limits are tested before
  any is counted, in one script: a request refused by one limit uses up none of the others, and
  two racing requests cannot both slip under a limit.
- ``Lockout`` — wrong codes per user lock the user out for a growing wait (Keycloak's brute
  force detection: wait increment, maximum wait, failure reset).
- ``ProviderGate`` — every provider call of every worker enters through it: one GCRA bucket
  caps the fleet's rate (the account's limit) and a set of leased slots caps how many calls are
  in flight at once (Twilio answers 20429 past its concurrency). A slot a dead worker held
  frees itself when its lease runs out.

If Redis cannot be reached every one of them raises ``ServiceUnavailable``: no limit is ever
skipped.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import redis.asyncio as redis
from limits import RateLimitItem, RateLimitItemPerDay, parse

from shared import metrics
from shared.errors import RateLimited, ServiceUnavailable, UserLocked
from shared.settings import Settings


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Who asks for a code to be sent where; ``verification_id`` is the one (re)sent."""

    destination: str  # E.164
    region: str
    verification_id: uuid.UUID
    api_key_id: uuid.UUID
    user_id: str | None = None
    client_ip: str | None = None


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


class Lockout(Protocol):
    async def ensure_not_locked(self, user_id: str) -> None:
        """Raise UserLocked while the user is locked out."""
        ...

    async def record_failure(self, user_id: str) -> float:
        """Count a wrong code; returns the seconds the user is now locked for (0: not locked)."""
        ...

    async def record_success(self, user_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Guards:
    """What the API's use cases consult before they write anything."""

    sends: SendLimits
    lockout: Lockout


class ProviderGate(Protocol):
    async def enter(self) -> str | float:
        """Take a slot for one provider call now (its id), or say how many seconds to wait."""
        ...

    async def leave(self, slot: str) -> None: ...


def _digest(value: str) -> str:
    # Keys name numbers and users without spelling them out.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@contextmanager
def _redis_or_unavailable() -> Iterator[None]:
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise ServiceUnavailable(
            "limits cannot be checked right now (Redis is unreachable); try again shortly"
        ) from exc


# KEYS: one list per limit, newest send time first. ARGV: per key, its amount and window (ms).
# Returns {0, 0} when admitted (and counted everywhere), else {i, ms}: the i-th limit refused,
# and the ms until it has room again.
_ADMIT = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
for i, key in ipairs(KEYS) do
  local amount, window = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  if amount < 1 then return {i, window} end
  local oldest = redis.call('LINDEX', key, amount - 1)
  if oldest and tonumber(oldest) > now_ms - window then
    return {i, tonumber(oldest) + window - now_ms}
  end
end
for i, key in ipairs(KEYS) do
  local amount, window = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('LPUSH', key, now_ms)
  redis.call('LTRIM', key, 0, amount - 1)
  redis.call('PEXPIRE', key, window)
end
return {0, 0}
"""


class RedisSendLimits:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self._settings = settings
        self._script = client.register_script(_ADMIT)
        self._prefix = settings.redis_key("limits")
        self._per_destination = parse(settings.limit_per_destination)
        self._per_user = parse(settings.limit_per_user)
        self._per_client_ip = parse(settings.limit_per_client_ip)
        self._per_api_key = parse(settings.limit_per_api_key)
        self._per_country = parse(settings.limit_per_country)
        self._cooldown = parse(f"1 per {math.ceil(settings.resend_cooldown_seconds)} seconds")

    def _country_limit(self, region: str) -> RateLimitItem:
        cap = self._settings.country_daily_caps.get(region)
        return self._per_country if cap is None else RateLimitItemPerDay(cap)

    def _applicable(self, request: SendRequest) -> list[tuple[str, RateLimitItem, str]]:
        # Ordered so that what the caller controls (key, IP, user) refuses first.
        applicable = [
            ("per_api_key", self._per_api_key, str(request.api_key_id)),
            ("resend_cooldown", self._cooldown, str(request.verification_id)),
        ]
        if request.client_ip:
            applicable.append(("per_client_ip", self._per_client_ip, request.client_ip))
        if request.user_id:
            applicable.append(("per_user", self._per_user, _digest(request.user_id)))
        applicable += [
            ("per_country", self._country_limit(request.region), request.region),
            ("per_destination", self._per_destination, _digest(request.destination)),
        ]
        return applicable

    async def admit(self, request: SendRequest) -> None:
        applicable = self._applicable(request)
        keys = [f"{self._prefix}:{name}:{identifier}" for name, _, identifier in applicable]
        args: list[int] = []
        for _, item, _ in applicable:
            args += [item.amount, item.get_expiry() * 1000]
        with _redis_or_unavailable():
            refused, wait_ms = await self._script(keys=keys, args=args)
        if refused:
            name, item, _ = applicable[int(refused) - 1]
            metrics.LIMIT_REFUSALS.labels(limit=name).inc()
            raise RateLimited(
                f"too many sends ({name.replace('_', ' ')}: {item}); try again later",
                limit=name,
                retry_after=math.ceil(int(wait_ms) / 1000),
            )

    def describe(self) -> list[LimitInfo]:
        return [
            LimitInfo("per_destination", str(self._per_destination), "each phone number"),
            LimitInfo("per_user", str(self._per_user), "each user_id"),
            LimitInfo("per_client_ip", str(self._per_client_ip), "each client_ip"),
            LimitInfo("per_api_key", str(self._per_api_key), "each API key"),
            LimitInfo(
                "per_country", str(self._per_country), "each destination country, unless capped"
            ),
            LimitInfo("resend_cooldown", str(self._cooldown), "each verification"),
        ]


# KEYS[1]: the user's lockout hash. ARGV: failures per lock step, wait increment (ms), max wait
# (ms), failure reset (ms). Returns the lock's end in ms of Redis time (0: not locked).
_RECORD_FAILURE = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local step, increment = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_wait, reset = tonumber(ARGV[3]), tonumber(ARGV[4])
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local locked_until = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')
if failures % step == 0 then
  locked_until = now_ms + math.min(increment * (failures / step), max_wait)
  redis.call('HSET', KEYS[1], 'locked_until', locked_until)
end
redis.call('PEXPIRE', KEYS[1], math.max(reset, locked_until - now_ms))
if locked_until <= now_ms then return 0 end
return locked_until - now_ms
"""

# KEYS[1]: the user's lockout hash. Returns the ms the lock still lasts (0: not locked).
_LOCK_REMAINING = """
local locked_until = tonumber(redis.call('HGET', KEYS[1], 'locked_until') or '0')
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
if locked_until <= now_ms then return 0 end
return locked_until - now_ms
"""


class RedisLockout:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self._settings = settings
        self._redis = client
        self._record = client.register_script(_RECORD_FAILURE)
        self._remaining = client.register_script(_LOCK_REMAINING)

    def _key(self, user_id: str) -> str:
        return self._settings.redis_key(f"lockout:{_digest(user_id)}")

    async def ensure_not_locked(self, user_id: str) -> None:
        with _redis_or_unavailable():
            remaining_ms = int(await self._remaining(keys=[self._key(user_id)]))
        if remaining_ms > 0:
            metrics.LIMIT_REFUSALS.labels(limit="user_lockout").inc()
            raise UserLocked(
                "too many wrong codes for this user; try again later",
                limit="user_lockout",
                retry_after=math.ceil(remaining_ms / 1000),
            )

    async def record_failure(self, user_id: str) -> float:
        settings = self._settings
        with _redis_or_unavailable():
            locked_ms = int(
                await self._record(
                    keys=[self._key(user_id)],
                    args=[
                        settings.lockout_failures,
                        int(settings.lockout_wait_increment_seconds * 1000),
                        int(settings.lockout_max_wait_seconds * 1000),
                        int(settings.lockout_failure_reset_seconds * 1000),
                    ],
                )
            )
        if locked_ms:
            metrics.USER_LOCKOUTS.inc()
        return locked_ms / 1000

    async def record_success(self, user_id: str) -> None:
        with _redis_or_unavailable():
            await self._redis.delete(self._key(user_id))


# GCRA (the "generic cell rate algorithm") keeps one timestamp per bucket, the theoretical arrival
# time of the next call; the in-flight set holds a member per call, scored by its lease's end.
# KEYS[1]: the bucket, KEYS[2]: the in-flight set. ARGV: emission interval (µs), burst, most
# calls in flight, lease (ms), the new slot's id.
# Returns 0 when the call may go now (and holds a slot), -1 when too many calls are in flight,
# else the µs to wait for the rate.
_ENTER = """
local now = redis.call('TIME')
local now_us = now[1] * 1000000 + now[2]
local now_ms = math.floor(now_us / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then return -1 end
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now_us then tat = now_us end
local new_tat = tat + interval
local wait = new_tat - now_us - burst * interval
if wait > 0 then return wait end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now_us) / 1000) + 1000)
local lease = tonumber(ARGV[4])
redis.call('ZADD', KEYS[2], now_ms + lease, ARGV[5])
redis.call('PEXPIRE', KEYS[2], lease + 1000)
return 0
"""

# How long to wait before asking again when every in-flight slot is taken: calls end within a
# provider round trip, and nothing tells us which ends first.
_FULL_POLL_SECONDS = 0.05


class RedisProviderGate:
    def __init__(self, settings: Settings, client: redis.Redis, bucket: str = "twilio") -> None:
        self._redis = client
        self._script = client.register_script(_ENTER)
        self._rate_key = settings.redis_key(f"throttle:{bucket}")
        self._in_flight_key = settings.redis_key(f"in-flight:{bucket}")
        self._interval_us = max(1, round(1_000_000 / settings.provider_rate))
        self._burst = settings.provider_burst
        self._max_in_flight = settings.provider_max_in_flight
        # Longer than any one call may take, so a live call never loses its slot.
        one_call = settings.twilio_connect_timeout_seconds + settings.twilio_read_timeout_seconds
        self._lease_ms = int((one_call + 5) * 1000)

    async def enter(self) -> str | float:
        slot = secrets.token_hex(8)
        with _redis_or_unavailable():
            answer = int(
                await self._script(
                    keys=[self._rate_key, self._in_flight_key],
                    args=[
                        self._interval_us,
                        self._burst,
                        self._max_in_flight,
                        self._lease_ms,
                        slot,
                    ],
                )
            )
        if answer == 0:
            return slot
        return _FULL_POLL_SECONDS if answer < 0 else answer / 1_000_000

    async def leave(self, slot: str) -> None:
        with _redis_or_unavailable():
            await self._redis.zrem(self._in_flight_key, slot)
