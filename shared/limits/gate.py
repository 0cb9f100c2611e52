"""The fleet-wide provider gate in Redis: a GCRA bucket for the rate and leased slots for the
calls in flight."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time

import redis.asyncio as redis

from shared.errors import ServiceUnavailable
from shared.kit.redis_client import Script, riding_along
from shared.kit.settings import Settings
from shared.limits.ports import (
    redis_or_unavailable,
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
        self._script = Script(client, _ENTER)
        self._rate_key = settings.redis_key(f"throttle:{bucket}")
        self._in_flight_key = settings.redis_key(f"in-flight:{bucket}")
        self._calls_key = provider_calls_key(settings, bucket)
        self._leave = Script(client, _LEAVE)
        self._interval_us = max(1, round(1_000_000 / settings.provider_rate))
        self._burst = settings.provider_burst
        self._max_in_flight = settings.provider_max_in_flight
        # Longer than any one call may take, so a live call never loses its slot.
        one_call = settings.twilio_connect_timeout_seconds + settings.twilio_read_timeout_seconds
        self._lease_ms = int((one_call + 5) * 1000)
        self._giving_back: set[asyncio.Task[None]] = set()

    async def enter(self) -> str | float:
        slot = secrets.token_hex(8)
        with redis_or_unavailable():
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
        with redis_or_unavailable():
            await self._leave(
                keys=[self._in_flight_key, minute], args=[slot, "failed" if failed else "ok"]
            )

    def give_back(self, slot: str, *, failed: bool = False) -> None:
        task = riding_along(self._leave_quietly(slot, failed=failed))
        # The loop keeps only a weak reference to a task.
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    async def _leave_quietly(self, slot: str, *, failed: bool) -> None:
        with contextlib.suppress(ServiceUnavailable):  # its lease runs out instead
            await self.leave(slot, failed=failed)
