"""Which Redis a URL names: a plain one, or a primary found through Sentinel."""

from __future__ import annotations

import redis.asyncio as redis
from redis.asyncio.sentinel import SentinelConnectionPool

from shared.kit.broker import SentinelTransport
from shared.kit.jobs import make_celery
from shared.kit.redis_client import is_sentinel_url, make_redis, make_subscriber
from shared.kit.settings import Settings

SENTINELS = "sentinel://:pw@10.0.0.1:26379;sentinel://10.0.0.2:26380;sentinel://10.0.0.3/2"


async def test_a_sentinel_url_finds_the_named_primary_with_the_first_parts_password() -> None:
    client = make_redis(SENTINELS, sentinel_master="twostep-primary")
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool)
    assert isinstance(pool, redis.BlockingConnectionPool)  # waits for a connection, never fails
    assert pool.service_name == "twostep-primary"
    sentinels = [
        sentinel.connection_pool.connection_kwargs for sentinel in pool.sentinel_manager.sentinels
    ]
    assert [(s["host"], s["port"]) for s in sentinels] == [
        ("10.0.0.1", 26379),
        ("10.0.0.2", 26380),
        ("10.0.0.3", 26379),
    ]
    assert pool.connection_kwargs["password"] == "pw"
    assert pool.connection_kwargs["db"] == 0
    await client.aclose()


async def test_the_database_comes_from_the_first_part_and_subscribers_follow_too() -> None:
    url = "sentinel://10.0.0.1:26379/3;sentinel://10.0.0.2:26379"
    subscriber = make_subscriber(url, sentinel_master="m")
    assert isinstance(subscriber.connection_pool, SentinelConnectionPool)
    assert subscriber.connection_pool.connection_kwargs["db"] == 3
    await subscriber.aclose()


async def test_a_plain_url_is_a_plain_bounded_pool() -> None:
    assert not is_sentinel_url("redis://127.0.0.1:6379/0")
    client = make_redis("redis://127.0.0.1:6379/4", max_connections=7)
    assert type(client.connection_pool) is redis.BlockingConnectionPool
    assert client.connection_pool.max_connections == 7
    await client.aclose()


def test_the_broker_through_sentinel_keeps_its_address_when_closed() -> None:
    settings = Settings(redis_url=SENTINELS, redis_sentinel_master="twostep-primary")
    app = make_celery(settings)
    with app.connection_for_write() as connection:
        transport = connection.transport
        assert isinstance(transport, SentinelTransport)
        assert (connection.transport_options or {})["master_name"] == "twostep-primary"
        opened_by = transport.client
        transport.client = None  # what kombu does on close, before the channel is done with it
        assert transport.client is opened_by
