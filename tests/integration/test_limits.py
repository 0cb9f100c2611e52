"""The limits on real Redis: counts, refusals, lockout steps and reservations, daily caps,
tenants kept apart, the fleet-wide provider gate."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis
from prometheus_client import REGISTRY

from shared.errors import RateLimited, ServiceUnavailable, UserLocked
from shared.kit.crypto import keyring_of
from shared.kit.redis_client import make_redis
from shared.kit.settings import Settings
from shared.limits.gate import RedisProviderGate
from shared.limits.lockout import RedisLockout
from shared.limits.ports import Guesser, Outcome, SendRequest
from shared.limits.sends import RedisSendLimits, setting_of
from tests.support import free_port, random_phone

TENANT = uuid.uuid4()


def limits_of(settings: Settings, client: redis.Redis) -> RedisSendLimits:
    return RedisSendLimits(settings, client, keyring_of(settings))


def lockout_of(settings: Settings, client: redis.Redis) -> RedisLockout:
    return RedisLockout(settings, client, keyring_of(settings))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    connection = make_redis(redis_url)
    yield connection
    await connection.aclose()


def send(to: str, *, user: str | None = None, ip: str | None = None, key: uuid.UUID | None = None,
         verification: uuid.UUID | None = None, region: str | None = "US",
         tenant: uuid.UUID = TENANT) -> SendRequest:  # fmt: skip
    return SendRequest(
        tenant_id=tenant,
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
    limits = limits_of(Settings(redis_url=redis_url), client)
    to = random_phone()
    before = (
        REGISTRY.get_sample_value("twostep_limit_refusals_total", {"limit": "per_destination"}) or 0
    )
    for _ in range(5):
        await limits.admit(send(to))
    refused = await refusal(limits, send(to))
    assert (refused.code, refused.limit) == ("rate_limited", "per_destination")
    assert 590 <= refused.retry_after <= 600
    # The refusal names the setting a developer raises (and nothing of the number's).
    assert "(the limit is TWOSTEP_LIMIT_PER_DESTINATION)" in refused.detail
    assert to not in refused.detail
    assert (
        REGISTRY.get_sample_value("twostep_limit_refusals_total", {"limit": "per_destination"})
        == before + 1
    )
    await limits.admit(send(random_phone()))  # other numbers are unaffected


async def test_a_refused_send_uses_up_no_other_limit(redis_url: str, client: redis.Redis) -> None:
    limits = limits_of(Settings(redis_url=redis_url, limit_per_user="1 per hour"), client)
    user, victim = f"user-{uuid.uuid4()}", random_phone()
    await limits.admit(send(random_phone(), user=user))
    for _ in range(3):
        assert (await refusal(limits, send(victim, user=user))).limit == "per_user"
    for _ in range(5):  # the victim's own quota is untouched
        await limits.admit(send(victim))


async def test_racing_sends_never_slip_past_a_limit(redis_url: str, client: redis.Redis) -> None:
    limits = limits_of(Settings(redis_url=redis_url), client)
    to = random_phone()
    outcomes = await asyncio.gather(
        *(limits.admit(send(to)) for _ in range(40)), return_exceptions=True
    )
    assert sum(outcome is None for outcome in outcomes) == 5
    assert all(isinstance(outcome, RateLimited) for outcome in outcomes if outcome is not None)


async def test_each_other_limit_refuses_the_third(redis_url: str, client: redis.Redis) -> None:
    region = "Q" + uuid.uuid4().hex[:6].upper()  # a country of this test's own
    limits = limits_of(
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
        refused = await refusal(limits, request_of())
        assert refused.limit == limit
        setting = setting_of(limit)
        assert setting in refused.detail
        assert setting.removeprefix("TWOSTEP_").lower() in Settings.model_fields


async def test_email_codes_count_per_domain_and_per_address_never_per_country(
    redis_url: str, client: redis.Redis
) -> None:
    limits = limits_of(
        Settings(
            redis_url=redis_url,
            limit_per_email_domain="3 per hour",
            limit_per_destination="2 per 10 minutes",
            limit_global_daily="1 per day",  # the SMS bill's cap: email sends do not count
        ),
        client,
    )
    domain = f"{uuid.uuid4().hex[:8]}.example.com"
    ada, grace = f"ada@{domain}", f"grace@{domain}"
    await limits.admit(send(ada, region=None))
    await limits.admit(send(ada, region=None))
    assert (await refusal(limits, send(ada, region=None))).limit == "per_destination"
    await limits.admit(send(grace, region=None))
    assert (await refusal(limits, send(f"alan@{domain}", region=None))).limit == (
        "per_email_domain"
    )
    await limits.admit(send(f"ada@other-{domain}", region=None))  # another domain
    names = {limit.name for limit in limits.describe()}
    assert {"per_email_domain", "per_destination", "global_daily"} <= names


async def test_a_verification_cannot_be_sent_again_within_the_cooldown(
    redis_url: str, client: redis.Redis
) -> None:
    limits = limits_of(Settings(redis_url=redis_url, resend_cooldown_seconds=1), client)
    verification, to = uuid.uuid4(), random_phone()
    await limits.admit(send(to, verification=verification))
    refused = await refusal(limits, send(to, verification=verification))
    assert (refused.limit, refused.retry_after) == ("resend_cooldown", 1)
    await asyncio.sleep(1.05)
    await limits.admit(send(to, verification=verification))


async def wrong(lockout: RedisLockout, guesser: Guesser) -> float:
    """One wrong code, reserved and settled as a check does; returns the lock it caused."""
    attempt = uuid.uuid4().hex
    await lockout.reserve(guesser, attempt, 30)
    lock = await lockout.settle(guesser, attempt, Outcome.WRONG)
    return lock.seconds if lock else 0.0


async def test_the_lockout_grows_and_is_lifted(redis_url: str, client: redis.Redis) -> None:
    settings = Settings(
        redis_url=redis_url,
        lockout_failures=3,
        lockout_wait_increment_seconds=1,
        lockout_max_wait_seconds=1.5,
    )
    lockout = lockout_of(settings, client)
    guesser = Guesser(TENANT, f"user-{uuid.uuid4()}", None)
    waits = []
    for _ in range(3):
        assert await wrong(lockout, guesser) == 0
        assert await wrong(lockout, guesser) == 0
        locked_for = await wrong(lockout, guesser)
        with pytest.raises(UserLocked) as locked:
            await lockout.reserve(guesser, "next", 30)
        waits.append((locked_for, locked.value.retry_after))
        await asyncio.sleep(locked_for + 0.05)
        await lockout.reserve(guesser, "after-the-wait", 30)
        await lockout.settle(guesser, "after-the-wait", Outcome.VOID)
    assert [round(w, 1) for w, _ in waits] == [1.0, 1.5, 1.5]  # grows, then capped
    assert [retry for _, retry in waits] == [1, 2, 2]
    await lockout.reserve(guesser, "right", 30)
    assert await lockout.settle(guesser, "right", Outcome.RIGHT) is None
    assert await wrong(lockout, guesser) == 0  # counting starts again


async def test_parallel_guesses_cannot_run_past_the_lockout(
    redis_url: str, client: redis.Redis
) -> None:
    lockout = lockout_of(Settings(redis_url=redis_url, lockout_failures=5), client)
    guesser = Guesser(TENANT, f"user-{uuid.uuid4()}", random_phone())
    outcomes = await asyncio.gather(
        *(lockout.reserve(guesser, f"check-{n}", 30) for n in range(10)), return_exceptions=True
    )
    accepted = [n for n, outcome in enumerate(outcomes) if outcome is None]
    assert len(accepted) == 5
    assert all(isinstance(o, UserLocked) and o.retry_after == 2 for o in outcomes if o is not None)
    # A guess that had no answer gives its room back; a wrong one keeps it, as a failure.
    await lockout.settle(guesser, f"check-{accepted[0]}", Outcome.VOID)
    await lockout.reserve(guesser, "check-again", 30)
    locks = [await lockout.settle(guesser, f"check-{n}", Outcome.WRONG) for n in accepted[1:]]
    assert locks[:3] == [None, None, None] and locks[3] is None
    lock = await lockout.settle(guesser, "check-again", Outcome.WRONG)
    assert lock is not None and lock.seconds > 0, "the fifth failure locks"


async def test_a_number_is_locked_out_without_a_user(redis_url: str, client: redis.Redis) -> None:
    settings = Settings(redis_url=redis_url, lockout_failures=2)
    lockout = lockout_of(settings, client)
    to = random_phone()
    by_number = Guesser.of(TENANT, None, to, "203.0.113.7")
    await wrong(lockout, by_number)
    assert await wrong(lockout, by_number) > 0
    with pytest.raises(UserLocked) as locked:
        await lockout.check(Guesser.of(TENANT, None, to, None))
    assert locked.value.limit == "destination_lockout"
    with pytest.raises(UserLocked) as locked:
        await lockout.reserve(Guesser.of(TENANT, None, random_phone(), "203.0.113.7"), "x", 30)
    assert locked.value.limit == "client_lockout", "the address that guessed is locked too"
    # A user's verification to that number is the user's alone: never locked by others.
    await lockout.reserve(Guesser.of(TENANT, "any-user", to, "203.0.113.7"), "x", 30)
    # The same number in another tenant is another number.
    await lockout.reserve(Guesser.of(uuid.uuid4(), None, to, None), "y", 30)


async def test_guesses_on_ones_own_verification_to_a_victims_number_never_lock_the_victim(
    redis_url: str, client: redis.Redis
) -> None:
    """The review's row 2: an attacker's account, the victim's number, 100 wrong codes."""
    settings = Settings(
        redis_url=redis_url,
        lockout_failures=5,
        lockout_wait_increment_seconds=0.001,
        lockout_max_wait_seconds=0.001,
    )
    lockout, to = lockout_of(settings, client), random_phone()
    attacker = Guesser.of(TENANT, f"attacker-{uuid.uuid4()}", to, "198.51.100.9")
    victim = Guesser.of(TENANT, f"victim-{uuid.uuid4()}", to, "198.51.100.9")
    for _ in range(100):
        await wrong(lockout, attacker)
        await asyncio.sleep(0.002)
    with pytest.raises(UserLocked) as locked:
        await lockout.check(attacker)
    assert "administrator" in locked.value.detail, "the attacker locked only themselves"
    await lockout.check(victim)
    await lockout.reserve(victim, "victims-login", 30)
    assert await lockout.settle(victim, "victims-login", Outcome.RIGHT) is None


async def test_consecutive_failures_are_forgotten_only_at_a_right_code(
    redis_url: str, client: redis.Redis
) -> None:
    """NIST SP 800-63B 5.2.2: at most 100 consecutive failures, however slowly they come."""
    settings = Settings(
        redis_url=redis_url,
        lockout_failures=3,
        lockout_wait_increment_seconds=0.001,
        lockout_max_wait_seconds=0.001,
        # The steps' failures are forgotten at once: only the consecutive count remains.
        lockout_failure_reset_seconds=0.001,
        lockout_hard_failures=7,
    )
    lockout = lockout_of(settings, client)
    guesser = Guesser(TENANT, f"user-{uuid.uuid4()}")
    for _ in range(6):
        await wrong(lockout, guesser)
        await asyncio.sleep(0.005)
    ((_, state),) = lockout._subjects(guesser)
    assert await client.ttl(state) == -1, "kept until a right code, however long that takes"
    await lockout.reserve(guesser, "seventh", 30)
    lock = await lockout.settle(guesser, "seventh", Outcome.WRONG)
    assert lock is not None and lock.hard, "the 7th consecutive failure, despite the resets"
    await lockout.release(guesser)
    for _ in range(6):
        await wrong(lockout, guesser)
        await asyncio.sleep(0.005)
    await lockout.reserve(guesser, "right", 30)
    await lockout.settle(guesser, "right", Outcome.RIGHT)
    for _ in range(6):  # counting starts again after the right code
        await wrong(lockout, guesser)
        await asyncio.sleep(0.005)
    await lockout.check(guesser)


async def test_a_long_run_of_failures_locks_until_released(
    redis_url: str, client: redis.Redis
) -> None:
    settings = Settings(
        redis_url=redis_url,
        lockout_failures=3,
        lockout_wait_increment_seconds=0.001,
        lockout_max_wait_seconds=0.001,
        lockout_hard_failures=7,
    )
    lockout = lockout_of(settings, client)
    guesser = Guesser(TENANT, f"user-{uuid.uuid4()}", None)
    for _ in range(6):
        await wrong(lockout, guesser)
        await asyncio.sleep(0.005)
    attempt = uuid.uuid4().hex
    await lockout.reserve(guesser, attempt, 30)
    lock = await lockout.settle(guesser, attempt, Outcome.WRONG)
    assert lock is not None and lock.hard
    await asyncio.sleep(0.01)
    with pytest.raises(UserLocked) as locked:
        await lockout.reserve(guesser, "later", 30)
    assert "administrator" in locked.value.detail
    await lockout.release(guesser)
    await lockout.reserve(guesser, "released", 30)


async def test_one_client_counts_once_however_it_writes_its_address(
    redis_url: str, client: redis.Redis
) -> None:
    limits = limits_of(Settings(redis_url=redis_url, limit_per_client_ip="2 per hour"), client)
    v4 = f"203.0.113.{uuid.uuid4().int % 250 + 1}"
    await limits.admit(send(random_phone(), ip=v4))
    await limits.admit(send(random_phone(), ip=f"::ffff:{v4}"))
    assert (await refusal(limits, send(random_phone(), ip=v4))).limit == "per_client_ip"
    # IPv6 is counted per /64: a host rotating through its addresses is one client.
    net = f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"
    await limits.admit(send(random_phone(), ip=f"{net}::1"))
    await limits.admit(send(random_phone(), ip=f"{net}:dead:beef:0:2"))
    refused = await refusal(limits, send(random_phone(), ip=f"{net}:ffff::3"))
    assert refused.limit == "per_client_ip"


async def test_daily_caps_for_a_key_and_for_everything_and_a_warning_near_them(
    redis_url: str, client: redis.Redis
) -> None:
    prefix = f"caps-{uuid.uuid4().hex[:6]}:"
    settings = Settings(
        redis_url=redis_url,
        redis_key_prefix=prefix,
        limit_per_api_key_daily="3 per day",
        limit_global_daily="5 per day",
        cap_warning_ratio=0.6,
    )
    limits = limits_of(settings, client)

    def near(cap: str) -> float:
        return REGISTRY.get_sample_value("twostep_daily_cap_near_total", {"cap": cap}) or 0.0

    key, before = uuid.uuid4(), near("per_api_key_daily")
    for _ in range(3):
        await limits.admit(send(random_phone(), key=key))
    assert near("per_api_key_daily") == before + 2  # the 2nd and 3rd of 3 are past 60 %
    refused = await refusal(limits, send(random_phone(), key=key))
    assert refused.limit == "per_api_key_daily" and 86_000 < refused.retry_after <= 86_400
    await limits.admit(send(random_phone(), tenant=uuid.uuid4()))
    await limits.admit(send(random_phone(), tenant=uuid.uuid4()))
    refused = await refusal(limits, send(random_phone(), tenant=uuid.uuid4()))
    assert refused.limit == "global_daily", "the deployment's cap counts every tenant"
    assert REGISTRY.get_sample_value("twostep_daily_cap_usage_ratio", {"cap": "global_daily"}) == 1


async def test_redis_keys_name_nobody_in_clear(redis_url: str, client: redis.Redis) -> None:
    prefix = f"clear-{uuid.uuid4().hex[:6]}:"
    settings = Settings(redis_url=redis_url, redis_key_prefix=prefix)
    to, user, ip = random_phone(), f"user-{uuid.uuid4().hex[:6]}", "198.51.100.77"
    await limits_of(settings, client).admit(send(to, user=user, ip=ip))
    await wrong(lockout_of(settings, client), Guesser(TENANT, user, to))
    keys = [key.decode() async for key in client.scan_iter(match=f"{prefix}*")]
    assert len(keys) >= 8
    for secret in (to, to[1:], user, ip):
        assert not [key for key in keys if secret in key], secret
    await client.delete(*keys)


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
        await limits_of(settings, dead).admit(send(random_phone()))
    with pytest.raises(ServiceUnavailable):
        await lockout_of(settings, dead).reserve(Guesser(TENANT, "someone", None), "a", 30)
    with pytest.raises(ServiceUnavailable):
        await lockout_of(settings, dead).settle(
            Guesser(TENANT, "someone", None), "a", Outcome.WRONG
        )
    with pytest.raises(ServiceUnavailable):
        await RedisProviderGate(settings, dead).enter()
    await dead.aclose()


async def test_a_key_prefix_keeps_deployments_apart_in_one_redis(
    redis_url: str, client: redis.Redis
) -> None:
    prefix = f"tenant-{uuid.uuid4().hex[:6]}:"
    settings = Settings(redis_url=redis_url, redis_key_prefix=prefix)
    await limits_of(settings, client).admit(send(random_phone()))
    await wrong(lockout_of(settings, client), Guesser(TENANT, "someone", None))
    await RedisProviderGate(settings, client).enter()
    from shared.kit.jobs import make_celery

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
