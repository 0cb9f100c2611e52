"""The lockout in Redis: wrong codes counted against whoever guesses, reserved as a check is
accepted and settled with the provider's answer."""

from __future__ import annotations

import math
from collections.abc import Sequence

import redis.asyncio as redis

from shared.errors import UserLocked
from shared.kit import metrics
from shared.kit.crypto import Keyring
from shared.kit.lookups import client_lookup, destination_lookup, user_lookup
from shared.kit.network import counted_network
from shared.kit.redis_client import Script
from shared.kit.settings import Settings
from shared.limits.ports import (
    Guesser,
    Lock,
    Outcome,
    redis_or_unavailable,
)

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
        self._locked = Script(client, _LOCKED)
        self._reserve = Script(client, _RESERVE)
        self._settle = Script(client, _SETTLE)

    def _subjects(self, guesser: Guesser) -> list[tuple[str, str]]:
        """(name, key of its state) per subject; the reservations' key is the state's + ':held'."""
        keyring, tenant, subjects = self._keyring, guesser.tenant_id, []
        if guesser.user_id is not None:
            lookup = user_lookup(keyring, tenant, guesser.user_id)
            subjects.append(("user_lockout", lookup))
        if guesser.destination is not None:
            subjects.append(
                ("destination_lockout", destination_lookup(keyring, tenant, guesser.destination))
            )
        if guesser.client_ip is not None:
            network = counted_network(guesser.client_ip)
            subjects.append(("client_lockout", client_lookup(keyring, tenant, network)))
        return [(name, self._settings.redis_key(f"lockout:{lookup}")) for name, lookup in subjects]

    async def check(self, guesser: Guesser) -> None:
        subjects = self._subjects(guesser)
        if not subjects:
            return
        with redis_or_unavailable():
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
        with redis_or_unavailable():
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
        with redis_or_unavailable():
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
        with redis_or_unavailable():
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
