"""Send limits in Redis: every limit tested before any is counted, in one Lua call."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import redis.asyncio as redis
import structlog
from limits import RateLimitItem, RateLimitItemPerDay, parse

from shared.errors import RateLimited
from shared.kit import metrics
from shared.kit.crypto import Keyring
from shared.kit.lookups import client_lookup, destination_lookup, user_lookup
from shared.kit.network import counted_network
from shared.kit.redis_client import Script
from shared.kit.settings import Settings
from shared.limits.ports import (
    LimitInfo,
    SendRequest,
    redis_or_unavailable,
)

log = structlog.get_logger(__name__)


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
        self._script = Script(client, _ADMIT)
        self._prefix = settings.redis_key("limits")
        self._per_destination = parse(settings.limit_per_destination)
        self._per_user = parse(settings.limit_per_user)
        self._per_client_ip = parse(settings.limit_per_client_ip)
        self._per_api_key = parse(settings.limit_per_api_key)
        self._per_api_key_daily = parse(settings.limit_per_api_key_daily)
        self._per_country = parse(settings.limit_per_country)
        self._per_email_domain = parse(settings.limit_per_email_domain)
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
        if request.destination is None:
            return applied
        if request.region is not None:  # a phone number: toll fraud's target
            applied += [
                daily(
                    "per_country", self._country_limit(request.region), f"{tenant}:{request.region}"
                ),
                daily("global_daily", self._global_daily, "all"),
            ]
        else:  # an email address
            domain = request.destination.rpartition("@")[2]
            applied.append(
                moving(
                    "per_email_domain",
                    self._per_email_domain,
                    keyring.blind_index("email-domain", str(tenant), domain),
                )
            )
        applied.append(
            moving(
                "per_destination",
                self._per_destination,
                destination_lookup(keyring, tenant, request.destination),
            )
        )
        return applied

    async def admit(self, request: SendRequest) -> None:
        applied = self._applicable(request)
        args: list[int] = []
        for limit in applied:
            args += [int(limit.window), limit.item.amount, limit.item.get_expiry() * 1000]
        with redis_or_unavailable():
            answer = await self._script(keys=[limit.key for limit in applied], args=args)
        refused, wait_ms = int(answer[0]), int(answer[1])
        if refused:
            limit = applied[refused - 1]
            metrics.LIMIT_REFUSALS.labels(limit=limit.name).inc()
            raise RateLimited(
                f"too many sends ({limit.name.replace('_', ' ')}: {limit.item}); try again later "
                f"(the limit is {setting_of(limit.name)})",
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
            LimitInfo(
                "per_destination", str(self._per_destination), "each phone number or email address"
            ),
            LimitInfo("per_user", str(self._per_user), "each user_id"),
            LimitInfo("per_client_ip", str(self._per_client_ip), "each client_ip (IPv6: each /64)"),
            LimitInfo("per_api_key", str(self._per_api_key), "each API key"),
            LimitInfo("per_api_key_daily", str(self._per_api_key_daily), "each API key"),
            LimitInfo(
                "per_country", str(self._per_country), "each destination country, unless capped"
            ),
            LimitInfo("per_email_domain", str(self._per_email_domain), "each email domain"),
            LimitInfo(
                "global_daily",
                str(self._global_daily),
                "every SMS, voice and WhatsApp send of every tenant",
            ),
            LimitInfo("resend_cooldown", str(self._cooldown), "each verification"),
        ]


class RedisActionLimit:
    """One moving-window limit on an action (e.g. new recovery codes per user)."""

    def __init__(self, settings: Settings, client: redis.Redis, name: str, limit: str) -> None:
        self._script = Script(client, _ADMIT)
        self._name = name
        self._item = parse(limit)
        self._prefix = settings.redis_key(f"limits:{name}")

    async def admit(self, subject: str) -> None:
        item = self._item
        with redis_or_unavailable():
            answer = await self._script(
                keys=[f"{self._prefix}:{subject}"],
                args=[int(_Window.MOVING), item.amount, item.get_expiry() * 1000],
            )
        if int(answer[0]):
            metrics.LIMIT_REFUSALS.labels(limit=self._name).inc()
            raise RateLimited(
                f"too many requests ({self._name.replace('_', ' ')}: {item}); try again later "
                f"(the limit is {setting_of(self._name)})",
                limit=self._name,
                retry_after=math.ceil(int(answer[1]) / 1000),
            )


def setting_of(limit: str) -> str:
    """The setting that sets a limit, for a refusal to name (a developer raises it there)."""
    if limit == "resend_cooldown":
        return "TWOSTEP_RESEND_COOLDOWN_SECONDS"
    return f"TWOSTEP_LIMIT_{limit.upper()}"
