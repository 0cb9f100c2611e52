"""Abuse protection: limits shared by every process, counted in Redis, failing closed.

Every key is of one tenant and names people only by keyed hashes (``shared.lookups``): a Redis
dump holds no phone number, user id or IP address. The one exception is the deployment-wide
daily cap, which is the operator's and counts every tenant's sends.

Three ports and their Redis adapters, each decision one atomic Lua call on Redis's own clock
(so the processes' clocks do not matter, and a decision costs one round trip):

- ``SendLimits`` — before anything is enqueued, a send must pass every limit: per destination,
  per user, per client IP (IPv6 per /64), per API key per minute and per day, per destination
  country per day, the whole deployment per day, and a cooldown per verification. Short limits
  are moving windows (a list of the latest send times, as the ``limits`` library keeps them;
  its ``parse`` reads our settings); daily caps are counters over a day's window. All limits
  are tested before any is counted, in one script: a request refused by one limit uses up none
  of the others, and two racing requests cannot both slip under a limit.
- ``Lockout`` — wrong codes count against whoever guesses: the user the verification was
  started for; for a verification started without a user, its number and the client address
  that asked for it. They never count against anybody else, so nobody can lock another user
  out by guessing on a verification of their own to that user's number. Each step of failures
  locks for a growing wait (Keycloak's brute force detection: wait increment, maximum wait,
  failure reset), and ``lockout_hard_failures`` *consecutive* failures — forgotten only at a
  right code, never by time (NIST SP 800-63B 5.2.2) — lock for good, until an admin key
  releases them. A check *reserves* its failure when it is accepted, in the same script that
  tests the lock, so parallel checks can never run past the lockout; the worker settles the
  reservation with the provider's answer. A locked user's new verification is refused before
  anything is sent.
- ``ProviderGate`` — every provider call of every worker enters through it: one GCRA bucket
  caps the fleet's rate (the account's limit) and a set of leased slots caps how many calls are
  in flight at once (Twilio answers 20429 past its concurrency). A slot a dead worker held
  frees itself when its lease runs out.

If Redis cannot be reached every one of them raises ``ServiceUnavailable``: no limit is ever
skipped.
"""

from __future__ import annotations

import math
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Protocol

import redis.asyncio as redis
import structlog
from limits import RateLimitItem, RateLimitItemPerDay, parse

from shared import metrics
from shared.crypto import Keyring
from shared.errors import RateLimited, ServiceUnavailable, UserLocked
from shared.lookups import client_lookup, phone_lookup, user_lookup
from shared.network import counted_network
from shared.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SendRequest:
    """Who asks for a code to be sent where. ``verification_id`` is the one (re)sent; a request
    with no ``destination`` is a send that cannot happen (a challenge for a user without 2SA),
    counted against the caller's limits all the same so that asking costs what sending does."""

    tenant_id: uuid.UUID
    api_key_id: uuid.UUID
    destination: str | None  # E.164
    region: str | None
    verification_id: uuid.UUID | None = None
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


@contextmanager
def _redis_or_unavailable() -> Iterator[None]:
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise ServiceUnavailable(
            "limits cannot be checked right now (Redis is unreachable); try again shortly"
        ) from exc


class _Window(IntEnum):
    MOVING = 0  # the latest sends' times, in a list
    DAILY = 1  # a counter over a window that starts with its first send


# KEYS: one per limit. ARGV: per key, its kind (_Window), amount and window (ms).
# Returns {0, 0, used...} when admitted (and counted everywhere; ``used`` per key, after this
# send), else {i, ms}: the i-th limit refused, and the ms until it has room again.
_ADMIT = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
for i, key in ipairs(KEYS) do
  local kind, amount = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  local window = tonumber(ARGV[3 * i])
  if amount < 1 then return {i, window} end
  if kind == 0 then
    local oldest = redis.call('LINDEX', key, amount - 1)
    if oldest and tonumber(oldest) > now_ms - window then
      return {i, tonumber(oldest) + window - now_ms}
    end
  elseif tonumber(redis.call('GET', key) or '0') >= amount then
    local left = redis.call('PTTL', key)
    if left < 0 then left = window end
    return {i, left}
  end
end
local answer = {0, 0}
for i, key in ipairs(KEYS) do
  local kind, amount = tonumber(ARGV[3 * i - 2]), tonumber(ARGV[3 * i - 1])
  local window = tonumber(ARGV[3 * i])
  if kind == 0 then
    redis.call('LPUSH', key, now_ms)
    redis.call('LTRIM', key, 0, amount - 1)
    redis.call('PEXPIRE', key, window)
    answer[i + 2] = redis.call('LLEN', key)
  else
    local used = redis.call('INCR', key)
    if used == 1 then redis.call('PEXPIRE', key, window) end
    answer[i + 2] = used
  end
end
return answer
"""


@dataclass(frozen=True, slots=True)
class _Applied:
    name: str
    item: RateLimitItem
    key: str
    window: _Window


class RedisSendLimits:
    def __init__(self, settings: Settings, client: redis.Redis, keyring: Keyring) -> None:
        self._settings = settings
        self._keyring = keyring
        self._script = client.register_script(_ADMIT)
        self._prefix = settings.redis_key("limits")
        self._per_destination = parse(settings.limit_per_destination)
        self._per_user = parse(settings.limit_per_user)
        self._per_client_ip = parse(settings.limit_per_client_ip)
        self._per_api_key = parse(settings.limit_per_api_key)
        self._per_api_key_daily = parse(settings.limit_per_api_key_daily)
        self._per_country = parse(settings.limit_per_country)
        self._global_daily = parse(settings.limit_global_daily)
        self._cooldown = parse(f"1 per {math.ceil(settings.resend_cooldown_seconds)} seconds")

    def _country_limit(self, region: str) -> RateLimitItem:
        cap = self._settings.country_daily_caps.get(region)
        return self._per_country if cap is None else RateLimitItemPerDay(cap)

    def _applicable(self, request: SendRequest) -> list[_Applied]:
        # Ordered so that what the caller controls (key, IP, user) refuses first.
        tenant, keyring, prefix = request.tenant_id, self._keyring, self._prefix

        def moving(name: str, item: RateLimitItem, subject: str) -> _Applied:
            return _Applied(name, item, f"{prefix}:{name}:{subject}", _Window.MOVING)

        def daily(name: str, item: RateLimitItem, subject: str) -> _Applied:
            return _Applied(name, item, f"{prefix}:{name}:{subject}", _Window.DAILY)

        applied = [
            moving("per_api_key", self._per_api_key, str(request.api_key_id)),
            daily("per_api_key_daily", self._per_api_key_daily, str(request.api_key_id)),
        ]
        if request.verification_id is not None:
            applied.append(moving("resend_cooldown", self._cooldown, str(request.verification_id)))
        if request.client_ip:
            network = counted_network(request.client_ip)
            applied.append(
                moving(
                    "per_client_ip", self._per_client_ip, client_lookup(keyring, tenant, network)
                )
            )
        if request.user_id:
            applied.append(
                moving("per_user", self._per_user, user_lookup(keyring, tenant, request.user_id))
            )
        if request.destination is not None and request.region is not None:
            applied += [
                daily(
                    "per_country", self._country_limit(request.region), f"{tenant}:{request.region}"
                ),
                daily("global_daily", self._global_daily, "all"),
                moving(
                    "per_destination",
                    self._per_destination,
                    phone_lookup(keyring, tenant, request.destination),
                ),
            ]
        return applied

    async def admit(self, request: SendRequest) -> None:
        applied = self._applicable(request)
        args: list[int] = []
        for limit in applied:
            args += [int(limit.window), limit.item.amount, limit.item.get_expiry() * 1000]
        with _redis_or_unavailable():
            answer = await self._script(keys=[limit.key for limit in applied], args=args)
        refused, wait_ms = int(answer[0]), int(answer[1])
        if refused:
            limit = applied[refused - 1]
            metrics.LIMIT_REFUSALS.labels(limit=limit.name).inc()
            raise RateLimited(
                f"too many sends ({limit.name.replace('_', ' ')}: {limit.item}); try again later",
                limit=limit.name,
                retry_after=math.ceil(wait_ms / 1000),
            )
        self._warn_near_caps(applied, [int(used) for used in answer[2:]], request.region)

    def _warn_near_caps(self, applied: list[_Applied], used: list[int], region: str | None) -> None:
        for limit, count in zip(applied, used, strict=True):
            if limit.window is not _Window.DAILY:
                continue
            ratio = count / limit.item.amount
            if limit.name == "global_daily":
                metrics.DAILY_CAP_USAGE.labels(cap=limit.name).set(ratio)
            if ratio >= self._settings.cap_warning_ratio:
                metrics.DAILY_CAP_NEAR.labels(cap=limit.name).inc()
                if count == math.ceil(limit.item.amount * self._settings.cap_warning_ratio):
                    # Once per window, as the share is crossed; the counter counts every send.
                    log.warning(
                        "limits.cap_near",
                        cap=limit.name,
                        used=count,
                        limit=str(limit.item),
                        region=region if limit.name == "per_country" else None,
                    )

    def describe(self) -> list[LimitInfo]:
        return [
            LimitInfo("per_destination", str(self._per_destination), "each phone number"),
            LimitInfo("per_user", str(self._per_user), "each user_id"),
            LimitInfo("per_client_ip", str(self._per_client_ip), "each client_ip (IPv6: each /64)"),
            LimitInfo("per_api_key", str(self._per_api_key), "each API key"),
            LimitInfo("per_api_key_daily", str(self._per_api_key_daily), "each API key"),
            LimitInfo(
                "per_country", str(self._per_country), "each destination country, unless capped"
            ),
            LimitInfo("global_daily", str(self._global_daily), "every send of every tenant"),
            LimitInfo("resend_cooldown", str(self._cooldown), "each verification"),
        ]


class RedisActionLimit:
    """One moving-window limit on an action (e.g. new recovery codes per user)."""

    def __init__(self, settings: Settings, client: redis.Redis, name: str, limit: str) -> None:
        self._script = client.register_script(_ADMIT)
        self._name = name
        self._item = parse(limit)
        self._prefix = settings.redis_key(f"limits:{name}")

    async def admit(self, subject: str) -> None:
        item = self._item
        with _redis_or_unavailable():
            answer = await self._script(
                keys=[f"{self._prefix}:{subject}"],
                args=[int(_Window.MOVING), item.amount, item.get_expiry() * 1000],
            )
        if int(answer[0]):
            metrics.LIMIT_REFUSALS.labels(limit=self._name).inc()
            raise RateLimited(
                f"too many requests ({self._name.replace('_', ' ')}: {item}); try again later",
                limit=self._name,
                retry_after=math.ceil(int(answer[1]) / 1000),
            )


# A guesser's subject's state is a hash: failures (towards the next timed lock; forgotten after
# the failure reset), last_failed (ms), locked_until (ms), consecutive (towards the hard lock;
# forgotten only at a right code) and hard ('1': locked until released). Its reservations are a
# sorted set beside it, scored by expiry.

# KEYS: per subject, its state hash. Returns {0, 0} when none is locked, else {i, ms}: the i-th
# subject is locked for ms more, or -1: until released.
_LOCKED = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
for i, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'locked_until', 'hard')
  if state[2] == '1' then return {i, -1} end
  local locked_until = tonumber(state[1] or '0')
  if locked_until > now_ms then return {i, locked_until - now_ms} end
end
return {0, 0}
"""

# KEYS: per subject, its state hash then its reservations. ARGV: failures per lock step, the
# attempt's id, the reservation's lifetime (ms), the failure reset (ms), consecutive failures
# before the hard lock.
# Returns {0, 0} when reserved, else {i, ms}: the i-th subject is locked for ms more, or, as ms,
# -1 locked until released, -2 as many guesses in flight as may fail before its next lock.
_RESERVE = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local step, reset, hard_after = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[5])
for i = 1, #KEYS, 2 do
  local state = redis.call(
    'HMGET', KEYS[i], 'failures', 'locked_until', 'hard', 'last_failed', 'consecutive')
  if state[3] == '1' then return {(i + 1) / 2, -1} end
  local locked_until = tonumber(state[2] or '0')
  if locked_until > now_ms then return {(i + 1) / 2, locked_until - now_ms} end
  redis.call('ZREMRANGEBYSCORE', KEYS[i + 1], '-inf', now_ms)
  local failures = tonumber(state[1] or '0')
  if now_ms - tonumber(state[4] or '0') > reset then failures = 0 end
  local next_lock = (math.floor(failures / step) + 1) * step
  local held = redis.call('ZCARD', KEYS[i + 1])
  if failures + held >= next_lock or tonumber(state[5] or '0') + held >= hard_after then
    return {(i + 1) / 2, -2}
  end
end
for i = 1, #KEYS, 2 do
  redis.call('ZADD', KEYS[i + 1], now_ms + tonumber(ARGV[3]), ARGV[2])
  redis.call('PEXPIRE', KEYS[i + 1], tonumber(ARGV[3]))
end
return {0, 0}
"""

# KEYS: as for _RESERVE. ARGV: the outcome, the attempt's id, failures per lock step, wait
# increment (ms), max wait (ms), failure reset (ms), consecutive failures before the hard lock.
# Returns {ms of the lock this failure caused (0: none), 1 if now locked until released else 0}.
_SETTLE = """
local now = redis.call('TIME')
local now_ms = now[1] * 1000 + math.floor(now[2] / 1000)
local outcome = ARGV[1]
local step, increment = tonumber(ARGV[3]), tonumber(ARGV[4])
local max_wait, reset, hard_after = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local locked_ms, hard = 0, 0
for i = 1, #KEYS, 2 do
  redis.call('ZREM', KEYS[i + 1], ARGV[2])
  if outcome == 'right' then
    if redis.call('HGET', KEYS[i], 'hard') ~= '1' then redis.call('DEL', KEYS[i]) end
  elseif outcome == 'wrong' then
    local state = redis.call('HMGET', KEYS[i], 'failures', 'last_failed')
    local failures = tonumber(state[1] or '0')
    if now_ms - tonumber(state[2] or '0') > reset then failures = 0 end
    failures = failures + 1
    local consecutive = redis.call('HINCRBY', KEYS[i], 'consecutive', 1)
    redis.call('HSET', KEYS[i], 'failures', failures, 'last_failed', now_ms)
    -- Consecutive failures are forgotten only at a right code: the state outlives any wait.
    redis.call('PERSIST', KEYS[i])
    if consecutive >= hard_after then
      if redis.call('HGET', KEYS[i], 'hard') ~= '1' then hard = 1 end
      redis.call('HSET', KEYS[i], 'hard', '1')
    elseif failures % step == 0 then
      local locked_until = now_ms + math.min(increment * (failures / step), max_wait)
      redis.call('HSET', KEYS[i], 'locked_until', locked_until)
      -- Only a lock this failure caused is reported: it is recorded once.
      if locked_until - now_ms > locked_ms then locked_ms = locked_until - now_ms end
    end
  end
end
return {locked_ms, hard}
"""


class RedisLockout:
    def __init__(self, settings: Settings, client: redis.Redis, keyring: Keyring) -> None:
        self._settings = settings
        self._keyring = keyring
        self._redis = client
        self._locked = client.register_script(_LOCKED)
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)

    def _subjects(self, guesser: Guesser) -> list[tuple[str, str]]:
        """(name, key of its state) per subject; the reservations' key is the state's + ':held'."""
        keyring, tenant, subjects = self._keyring, guesser.tenant_id, []
        if guesser.user_id is not None:
            lookup = user_lookup(keyring, tenant, guesser.user_id)
            subjects.append(("user_lockout", lookup))
        if guesser.destination is not None:
            subjects.append(
                ("destination_lockout", phone_lookup(keyring, tenant, guesser.destination))
            )
        if guesser.client_ip is not None:
            network = counted_network(guesser.client_ip)
            subjects.append(("client_lockout", client_lookup(keyring, tenant, network)))
        return [(name, self._settings.redis_key(f"lockout:{lookup}")) for name, lookup in subjects]

    async def check(self, guesser: Guesser) -> None:
        subjects = self._subjects(guesser)
        if not subjects:
            return
        with _redis_or_unavailable():
            refused, ms = await self._locked(keys=[state for _, state in subjects])
        if int(refused):
            limit = subjects[int(refused) - 1][0]
            metrics.LIMIT_REFUSALS.labels(limit=limit).inc()
            raise _refusal(limit, int(ms))

    @staticmethod
    def _keys(subjects: Sequence[tuple[str, str]]) -> list[str]:
        return [key for _, state in subjects for key in (state, f"{state}:held")]

    async def reserve(self, guesser: Guesser, attempt: str, ttl_seconds: float) -> None:
        subjects = self._subjects(guesser)
        if not subjects:
            return
        with _redis_or_unavailable():
            refused, ms = await self._reserve(
                keys=self._keys(subjects),
                args=[
                    self._settings.lockout_failures,
                    attempt,
                    int(ttl_seconds * 1000),
                    int(self._settings.lockout_failure_reset_seconds * 1000),
                    self._settings.lockout_hard_failures,
                ],
            )
        if not int(refused):
            return
        limit = subjects[int(refused) - 1][0]
        metrics.LIMIT_REFUSALS.labels(limit=limit).inc()
        raise _refusal(limit, int(ms))

    async def settle(self, guesser: Guesser, attempt: str, outcome: Outcome) -> Lock | None:
        subjects = self._subjects(guesser)
        if not subjects:
            return None
        settings = self._settings
        with _redis_or_unavailable():
            locked_ms, hard = await self._settle(
                keys=self._keys(subjects),
                args=[
                    outcome.value,
                    attempt,
                    settings.lockout_failures,
                    int(settings.lockout_wait_increment_seconds * 1000),
                    int(settings.lockout_max_wait_seconds * 1000),
                    int(settings.lockout_failure_reset_seconds * 1000),
                    settings.lockout_hard_failures,
                ],
            )
        if int(hard):
            metrics.USER_LOCKOUTS.labels(kind="hard").inc()
            return Lock(seconds=0, hard=True)
        if int(locked_ms) > 0:
            metrics.USER_LOCKOUTS.labels(kind="timed").inc()
            return Lock(seconds=int(locked_ms) / 1000)
        return None

    async def release(self, guesser: Guesser) -> None:
        with _redis_or_unavailable():
            await self._redis.delete(*self._keys(self._subjects(guesser)))


# Locked until an admin releases it: there is no honest wait to announce; this is how long a
# client should leave it before asking again.
_HARD_LOCK_RETRY_SECONDS = 3600
# Guesses in flight settle within a provider round trip.
_IN_FLIGHT_RETRY_SECONDS = 2


def _refusal(limit: str, ms: int) -> UserLocked:
    if ms == -1:
        return UserLocked(
            "too many wrong codes: locked until an administrator releases the lockout",
            limit=limit,
            retry_after=_HARD_LOCK_RETRY_SECONDS,
        )
    if ms == -2:
        return UserLocked(
            "as many codes are being checked as may still be wrong before a lockout; "
            "wait for their answers",
            limit=limit,
            retry_after=_IN_FLIGHT_RETRY_SECONDS,
        )
    return UserLocked(
        "too many wrong codes; try again later", limit=limit, retry_after=math.ceil(ms / 1000)
    )


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

# KEYS[1]: the in-flight set, KEYS[2]: this minute's call counts. ARGV: the slot, the outcome.
# The counts last a quarter of an hour: enough for `twostep status`'s last five minutes.
_LEAVE = """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
redis.call('EXPIRE', KEYS[2], 900)
return 0
"""

# How long to wait before asking again when every in-flight slot is taken: calls end within a
# provider round trip, and nothing tells us which ends first.
_FULL_POLL_SECONDS = 0.05


def provider_calls_key(settings: Settings, bucket: str = "twilio") -> str:
    """Per-minute counts of the fleet's provider calls: ``<this>:<unix minute>`` → ok, failed."""
    return settings.redis_key(f"provider-calls:{bucket}")


class RedisProviderGate:
    def __init__(self, settings: Settings, client: redis.Redis, bucket: str = "twilio") -> None:
        self._redis = client
        self._script = client.register_script(_ENTER)
        self._rate_key = settings.redis_key(f"throttle:{bucket}")
        self._in_flight_key = settings.redis_key(f"in-flight:{bucket}")
        self._calls_key = provider_calls_key(settings, bucket)
        self._leave = client.register_script(_LEAVE)
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

    async def leave(self, slot: str, *, failed: bool = False) -> None:
        minute = f"{self._calls_key}:{int(time.time() // 60)}"
        with _redis_or_unavailable():
            await self._leave(
                keys=[self._in_flight_key, minute], args=[slot, "failed" if failed else "ok"]
            )
