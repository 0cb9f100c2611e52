"""The limits on real Redis: counts, refusals, lockout steps, the fleet-wide provider gate."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis
from prometheus_client import REGISTRY

from shared.errors import RateLimited, ServiceUnavailable, UserLocked
from shared.limits import (
    RedisLockout,
    RedisProviderGate,
    RedisSendLimits,
    SendRequest,
)
from shared.redis_client import make_redis
from shared.settings import Settings
from tests.support import free_port, random_phone


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = make_redis(redis_url)
    yield connection
    await connection.aclose()


def send(to: str, *, user: str | None = None, ip: str | None = None, key: uuid.UUID | None = None,
         verification: uuid.UUID | None = None, region: str = "US") -> SendRequest:  # fmt: skip
    return SendRequest(
        destination=to,
        region=region,
        verification_id=verification or uuid.uuid4(),
        api_key_id=key or uuid.uuid4(),
        user_id=user,
        client_ip=ip,
    )


async def refusal(limits: RedisSendLimits, request: SendRequest) -> RateLimited:
    with pytest.raises(RateLimited) as refused:
        await limits.admit(request)
    return refused.value


async def test_the_sixth_send_to_a_number_within_ten_minutes_is_refused(
    redis_url: str, client: redis.Redis
) -> None:
    limits = RedisSendLimits(Settings(redis_url=redis_url), client)
    to = random_phone()
    before = (
        REGISTRY.get_sample_value("twostep_limit_refusals_total", {"limit": "per_destination"}) or 0
    )
    for _ in range(5):
        await limits.admit(send(to))
    refused = await refusal(limits, send(to))
    assert (refused.code, refused.limit) == ("rate_limited", "per_destination")
    assert 590 <= refused.retry_after <= 600
    assert (
        REGISTRY.get_sample_value("twostep_limit_refusals_total", {"limit": "per_destination"})
        == before + 1
    )
    await limits.admit(send(random_phone()))  # other numbers are unaffected


async def test_a_refused_send_uses_up_no_other_limit(redis_url: str, client: redis.Redis) -> None:
    limits = RedisSendLimits(Settings(redis_url=redis_url, limit_per_user="1 per hour"), client)
    user, victim = f"user-{uuid.uuid4()}", random_phone()
    await limits.admit(send(random_phone(), user=user))
    for _ in range(3):
        assert (await refusal(limits, send(victim, user=user))).limit == "per_user"
    for _ in range(5):  # the victim's own quota is untouched
        await limits.admit(send(victim))


async def test_racing_sends_never_slip_past_a_limit(redis_url: str, client: redis.Redis) -> None:
    limits = RedisSendLimits(Settings(redis_url=redis_url), client)
    to = random_phone()
    outcomes = await asyncio.gather(
        *(limits.admit(send(to)) for _ in range(40)), return_exceptions=True
    )
    assert sum(outcome is None for outcome in outcomes) == 5
    assert all(isinstance(outcome, RateLimited) for outcome in outcomes if outcome is not None)


async def test_each_other_limit_refuses_the_third(redis_url: str, client: redis.Redis) -> None:
    region = "Q" + uuid.uuid4().hex[:6].upper()  # a country of this test's own
    limits = RedisSendLimits(
        Settings(
            redis_url=redis_url,
            limit_per_client_ip="2 per hour",
            limit_per_api_key="2 per minute",
            country_daily_caps={region: 2},
        ),
        client,
    )
    ip = f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"  # documentation range
    key = uuid.uuid4()
    cases: dict[str, Callable[[], SendRequest]] = {
        "per_client_ip": lambda: send(random_phone(), ip=ip),
        "per_api_key": lambda: send(random_phone(), key=key),
        "per_country": lambda: send(random_phone(), region=region),
    }
    for limit, request_of in cases.items():
        await limits.admit(request_of())
        await limits.admit(request_of())
        assert (await refusal(limits, request_of())).limit == limit


async def test_a_verification_cannot_be_sent_again_within_the_cooldown(
    redis_url: str, client: redis.Redis
) -> None:
    limits = RedisSendLimits(Settings(redis_url=redis_url, resend_cooldown_seconds=1), client)
    verification, to = uuid.uuid4(), random_phone()
    await limits.admit(send(to, verification=verification))
    refused = await refusal(limits, send(to, verification=verification))
    assert (refused.limit, refused.retry_after) == ("resend_cooldown", 1)
    await asyncio.sleep(1.05)
    await limits.admit(send(to, verification=verification))


async def test_the_lockout_grows_and_is_lifted(redis_url: str, client: redis.Redis) -> None:
    settings = Settings(
        redis_url=redis_url,
        lockout_failures=3,
        lockout_wait_increment_seconds=1,
        lockout_max_wait_seconds=1.5,
    )
    lockout, user = RedisLockout(settings, client), f"user-{uuid.uuid4()}"
    waits = []
    for _ in range(3):
        assert await lockout.record_failure(user) == 0
        assert await lockout.record_failure(user) == 0
        locked_for = await lockout.record_failure(user)
        with pytest.raises(UserLocked) as locked:
            await lockout.ensure_not_locked(user)
        waits.append((locked_for, locked.value.retry_after))
        await asyncio.sleep(locked_for + 0.05)
        await lockout.ensure_not_locked(user)
    assert [round(w, 1) for w, _ in waits] == [1.0, 1.5, 1.5]  # grows, then capped
    assert [retry for _, retry in waits] == [1, 2, 2]
    await lockout.record_success(user)
    assert await lockout.record_failure(user) == 0  # counting starts again


async def test_the_gate_holds_the_rate_with_its_burst(redis_url: str, client: redis.Redis) -> None:
    gate = RedisProviderGate(
        Settings(
            redis_url=redis_url, provider_rate=50, provider_burst=5, provider_max_in_flight=1000
        ),
        client,
        bucket=str(uuid.uuid4()),
    )
    first = [await gate.enter() for _ in range(5)]
    assert all(isinstance(slot, str) for slot in first)
    wait = await gate.enter()
    assert isinstance(wait, float) and 0 < wait <= 0.021
    granted, started = 0, time.monotonic()
    while time.monotonic() - started < 1.0:
        entered = await gate.enter()
        if isinstance(entered, str):
            granted += 1
            await gate.leave(entered)
        else:
            await asyncio.sleep(entered)
    assert 45 <= granted <= 52


async def test_the_gate_caps_the_calls_in_flight_and_frees_a_dead_callers_slot(
    redis_url: str, client: redis.Redis
) -> None:
    settings = Settings(
        redis_url=redis_url,
        provider_rate=10_000,
        provider_burst=100,
        provider_max_in_flight=3,
        twilio_connect_timeout_seconds=0.2,
        twilio_read_timeout_seconds=0.3,
    )
    gate_bucket = str(uuid.uuid4())
    gate = RedisProviderGate(settings, client, bucket=gate_bucket)
    held = [await gate.enter() for _ in range(3)]
    assert all(isinstance(slot, str) for slot in held)
    assert isinstance(await gate.enter(), float), "a fourth call went in"
    await gate.leave(str(held[0]))
    assert isinstance(await gate.enter(), str)
    # The other two are never given back, as if their worker died. Their leases last one call's
    # timeouts and a margin; once those have run out, the slots are free again.
    in_flight = f"twostep:in-flight:{gate_bucket}"
    seconds, micros = await client.time()
    now_ms = seconds * 1000 + micros // 1000
    leases = await client.zrange(in_flight, 0, -1, withscores=True)
    assert len(leases) == 3
    assert all(0 < ends - now_ms <= (0.2 + 0.3 + 5) * 1000 for _, ends in leases)
    await client.zadd(in_flight, {member: now_ms - 1 for member, _ in leases[:2]})
    freed = [await gate.enter() for _ in range(2)]
    assert all(isinstance(slot, str) for slot in freed)
    assert isinstance(await gate.enter(), float)


async def test_every_limit_fails_closed_without_redis() -> None:
    dead = make_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ServiceUnavailable):
        await RedisSendLimits(settings, dead).admit(send(random_phone()))
    with pytest.raises(ServiceUnavailable):
        await RedisLockout(settings, dead).ensure_not_locked("someone")
    with pytest.raises(ServiceUnavailable):
        await RedisLockout(settings, dead).record_failure("someone")
    with pytest.raises(ServiceUnavailable):
        await RedisProviderGate(settings, dead).enter()
    await dead.aclose()


async def test_a_key_prefix_keeps_deployments_apart_in_one_redis(
    redis_url: str, client: redis.Redis
) -> None:
    prefix = f"tenant-{uuid.uuid4().hex[:6]}:"
    settings = Settings(redis_url=redis_url, redis_key_prefix=prefix)
    await RedisSendLimits(settings, client).admit(send(random_phone()))
    await RedisLockout(settings, client).record_failure("someone")
    await RedisProviderGate(settings, client).enter()
    from shared.jobs import make_celery

    app = make_celery(settings)
    app.send_task("twostep.send_code", args=[str(uuid.uuid4())], queue="twostep.send")
    app.close()
    keys = {key.decode() async for key in client.scan_iter(match=f"{prefix}*")}
    assert any(key.startswith(f"{prefix}twostep:limits") for key in keys)
    assert any(key.startswith(f"{prefix}twostep:lockout:") for key in keys)
    assert f"{prefix}twostep:throttle:twilio" in keys
    assert f"{prefix}twostep:in-flight:twilio" in keys
    assert f"{prefix}twostep.send" in keys
    await client.delete(*keys)
