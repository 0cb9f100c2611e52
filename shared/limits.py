"""Abuse protection: limits shared by every process, counted in Redis, failing closed.

Three ports and their Redis adapters:

- ``SendLimits`` — before anything is enqueued, a send must pass every limit: per destination,
  per user, per client IP, per API key, per destination country per day, and a cooldown per
  verification. Counting is the ``limits`` library's moving window, each check-and-count one
  atomic Lua call. All limits are *tested* before any is *counted*, so a request refused by one
  limit uses up none of the others (two racing requests can at worst both count, never both
  exceed).
- ``Lockout`` — wrong codes per user lock the user out for a growing wait (Keycloak's brute
  force detection: wait increment, maximum wait, failure reset).
- ``ProviderThrottle`` — one GCRA bucket for every worker's Twilio requests, so the fleet stays
  under the account's rate however many workers run. ``limits`` has no token bucket or GCRA,
  so this one is ours: a few lines of Lua on Redis's own clock.

If Redis cannot be reached every one of them raises ``ServiceUnavailable``: no limit is ever
skipped.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import redis
from limits import RateLimitItem, RateLimitItemPerDay, parse
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

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
    def admit(self, request: SendRequest) -> None:
        """Count the send against every limit, or raise RateLimited and count nothing."""
        ...

    def describe(self) -> list[LimitInfo]: ...


class Lockout(Protocol):
    def ensure_not_locked(self, user_id: str) -> None:
        """Raise UserLocked while the user is locked out."""
        ...

    def record_failure(self, user_id: str) -> float:
        """Count a wrong code; returns the seconds the user is now locked for (0: not locked)."""
        ...

    def record_success(self, user_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Guards:
    """What the API's use cases consult before they write anything."""

    sends: SendLimits
    lockout: Lockout


class ProviderThrottle(Protocol):
    def reserve(self) -> float:
        """Take a slot for one provider request now (0.0), or say how many seconds to wait."""
        ...


def _digest(value: str) -> str:
    # Keys name numbers and users without spelling them out.
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@contextmanager
def _redis_or_unavailable() -> Iterator[None]:
    try:
        yield
    except (redis.RedisError, StorageError, OSError) as exc:
        raise ServiceUnavailable(
            "limits cannot be checked right now (Redis is unreachable); try again shortly"
        ) from exc


class RedisSendLimits:
    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self._settings = settings
        storage = RedisStorage(
            settings.redis_url,
            connection_pool=client.connection_pool,
            key_prefix=settings.redis_key("limits"),
            wrap_exceptions=True,
        )
        self._limiter = MovingWindowRateLimiter(storage)
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

    def admit(self, request: SendRequest) -> None:
        applicable = self._applicable(request)
        with _redis_or_unavailable():
            for name, item, identifier in applicable:
                if not self._limiter.test(item, name, identifier):
                    self._refuse(name, item, identifier)
            for name, item, identifier in applicable:
                if not self._limiter.hit(item, name, identifier):
                    self._refuse(name, item, identifier)

    def _refuse(self, name: str, item: RateLimitItem, identifier: str) -> None:
        reset_at = self._limiter.get_window_stats(item, name, identifier).reset_time
        metrics.LIMIT_REFUSALS.labels(limit=name).inc()
        raise RateLimited(
            f"too many sends ({name.replace('_', ' ')}: {item}); try again later",
            limit=name,
            retry_after=math.ceil(reset_at - time.time()),
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

    def ensure_not_locked(self, user_id: str) -> None:
        with _redis_or_unavailable():
            remaining_ms = int(self._remaining(keys=[self._key(user_id)]))
        if remaining_ms > 0:
            metrics.LIMIT_REFUSALS.labels(limit="user_lockout").inc()
            raise UserLocked(
                "too many wrong codes for this user; try again later",
                limit="user_lockout",
                retry_after=math.ceil(remaining_ms / 1000),
            )

    def record_failure(self, user_id: str) -> float:
        settings = self._settings
        with _redis_or_unavailable():
            locked_ms = int(
                self._record(
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

    def record_success(self, user_id: str) -> None:
        with _redis_or_unavailable():
            self._redis.delete(self._key(user_id))


# GCRA (the "generic cell rate algorithm"): one timestamp per bucket, the theoretical arrival
# time of the next request. KEYS[1]: the bucket. ARGV: emission interval (µs), burst.
# Returns 0 when the request may go now, else the µs to wait.
_GCRA = """
local now = redis.call('TIME')
local now_us = now[1] * 1000000 + now[2]
local interval, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now_us then tat = now_us end
local new_tat = tat + interval
local wait = new_tat - now_us - burst * interval
if wait > 0 then return wait end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now_us) / 1000) + 1000)
return 0
"""


class RedisProviderThrottle:
    def __init__(self, settings: Settings, client: redis.Redis, bucket: str = "twilio") -> None:
        self._script = client.register_script(_GCRA)
        self._key = settings.redis_key(f"throttle:{bucket}")
        self._interval_us = max(1, round(1_000_000 / settings.provider_rate))
        self._burst = settings.provider_burst

    def reserve(self) -> float:
        with _redis_or_unavailable():
            wait_us = int(self._script(keys=[self._key], args=[self._interval_us, self._burst]))
        return wait_us / 1_000_000
