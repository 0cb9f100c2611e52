"""The limits on real Redis: counts, refusals, lockout steps, the fleet-wide throttle."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from prometheus_client import REGISTRY

from shared.errors import RateLimited, ServiceUnavailable, UserLocked
from shared.limits import (
    RedisLockout,
    RedisProviderThrottle,
    RedisSendLimits,
    SendRequest,
)
from shared.redis_client import make_redis
from shared.settings import Settings
from tests.support import free_port, random_phone


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    connection = make_redis(redis_url)
    yield connection
    connection.close()


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


def refusal(limits: RedisSendLimits, request: SendRequest) -> RateLimited:
    with pytest.raises(RateLimited) as refused:
        limits.admit(request)
    return refused.value


def test_the_sixth_send_to_a_number_within_ten_minutes_is_refused(
    redis_url: str, client: redis.Redis
) -> None:
    limits = RedisSendLimits(Settings(redis_url=redis_url), client)
    to = random_phone()
    before = (
        REGISTRY.get_sample_value("twostep_limit_refusals_total", {"limit": "per_destination"}) or 0
    )
    for _ in range(5):
        limits.admit(send(to))
    refused = refusal(limits, send(to))
    assert (refused.code, refused.limit) == ("rate_limited", "per_destination")
    assert 590 <= refused.retry_after <= 600
    assert (
        REGISTRY.get_sample_value("twostep_limit_refusals_total", {"limit": "per_destination"})
        == before + 1
    )
    limits.admit(send(random_phone()))  # other numbers are unaffected


def test_a_refused_send_uses_up_no_other_limit(redis_url: str, client: redis.Redis) -> None:
    limits = RedisSendLimits(Settings(redis_url=redis_url, limit_per_user="1 per hour"), client)
    user, victim = f"user-{uuid.uuid4()}", random_phone()
    limits.admit(send(random_phone(), user=user))
    for _ in range(3):
        assert refusal(limits, send(victim, user=user)).limit == "per_user"
    for _ in range(5):  # the victim's own quota is untouched
        limits.admit(send(victim))


def test_each_other_limit_refuses_the_third(redis_url: str, client: redis.Redis) -> None:
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
        limits.admit(request_of())
        limits.admit(request_of())
        assert refusal(limits, request_of()).limit == limit


def test_a_verification_cannot_be_sent_again_within_the_cooldown(
    redis_url: str, client: redis.Redis
) -> None:
    limits = RedisSendLimits(Settings(redis_url=redis_url, resend_cooldown_seconds=1), client)
    verification, to = uuid.uuid4(), random_phone()
    limits.admit(send(to, verification=verification))
    refused = refusal(limits, send(to, verification=verification))
    assert (refused.limit, refused.retry_after) == ("resend_cooldown", 1)
    time.sleep(1.05)
    limits.admit(send(to, verification=verification))


def test_the_lockout_grows_and_is_lifted(redis_url: str, client: redis.Redis) -> None:
    settings = Settings(
        redis_url=redis_url,
        lockout_failures=3,
        lockout_wait_increment_seconds=1,
        lockout_max_wait_seconds=1.5,
    )
    lockout, user = RedisLockout(settings, client), f"user-{uuid.uuid4()}"
    waits = []
    for _ in range(3):
        assert lockout.record_failure(user) == 0 and lockout.record_failure(user) == 0
        locked_for = lockout.record_failure(user)
        with pytest.raises(UserLocked) as locked:
            lockout.ensure_not_locked(user)
        waits.append((locked_for, locked.value.retry_after))
        time.sleep(locked_for + 0.05)
        lockout.ensure_not_locked(user)
    assert [round(w, 1) for w, _ in waits] == [1.0, 1.5, 1.5]  # grows, then capped
    assert [retry for _, retry in waits] == [1, 2, 2]
    lockout.record_success(user)
    assert lockout.record_failure(user) == 0  # counting starts again


def test_the_throttle_holds_the_rate_with_its_burst(redis_url: str, client: redis.Redis) -> None:
    throttle = RedisProviderThrottle(
        Settings(redis_url=redis_url, provider_rate=50, provider_burst=5),
        client,
        bucket=str(uuid.uuid4()),
    )
    assert [throttle.reserve() for _ in range(5)] == [0.0] * 5
    wait = throttle.reserve()
    assert 0 < wait <= 0.021
    granted, started = 0, time.monotonic()
    while time.monotonic() - started < 1.0:
        wait = throttle.reserve()
        if wait == 0:
            granted += 1
        else:
            time.sleep(wait)
    assert 45 <= granted <= 52


def test_every_limit_fails_closed_without_redis() -> None:
    dead = make_redis(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(ServiceUnavailable):
        RedisSendLimits(settings, dead).admit(send(random_phone()))
    with pytest.raises(ServiceUnavailable):
        RedisLockout(settings, dead).ensure_not_locked("someone")
    with pytest.raises(ServiceUnavailable):
        RedisLockout(settings, dead).record_failure("someone")
    with pytest.raises(ServiceUnavailable):
        RedisProviderThrottle(settings, dead).reserve()


def test_a_key_prefix_keeps_deployments_apart_in_one_redis(
    redis_url: str, client: redis.Redis
) -> None:
    prefix = f"tenant-{uuid.uuid4().hex[:6]}:"
    settings = Settings(redis_url=redis_url, redis_key_prefix=prefix)
    RedisSendLimits(settings, client).admit(send(random_phone()))
    RedisLockout(settings, client).record_failure("someone")
    RedisProviderThrottle(settings, client).reserve()
    from shared.jobs import make_celery

    app = make_celery(settings)
    app.send_task("twostep.send_code", args=[str(uuid.uuid4())], queue="twostep.send")
    app.close()
    keys = {key.decode() for key in client.scan_iter(match=f"{prefix}*")}
    assert any(key.startswith(f"{prefix}twostep:limits") for key in keys)
    assert any(key.startswith(f"{prefix}twostep:lockout:") for key in keys)
    assert f"{prefix}twostep:throttle:twilio" in keys
    assert f"{prefix}twostep.send" in keys
    client.delete(*keys)
