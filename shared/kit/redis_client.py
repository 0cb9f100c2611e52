"""Redis clients (asyncio). Every process shares one bounded pool per purpose.

``TWOSTEP_REDIS_URL`` is a plain ``redis://`` URL or, for a primary watched by Redis Sentinel, a
list of sentinels as kombu writes it — ``sentinel://h1:26379;sentinel://h2:26379/0`` (with
``TWOSTEP_REDIS_SENTINEL_MASTER`` naming the primary). Through Sentinel a client asks where the
primary is before it connects, and again after a failover.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff

_SENTINEL_PORT = 26379


def is_sentinel_url(url: str) -> bool:
    return url.startswith("sentinel://")


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (it follows the primary) that waits for a connection when all are in
    use, as a plain pool does here, instead of failing."""


def make_redis(
    url: str, *, sentinel_master: str = "mymaster", timeout: float = 2.0, max_connections: int = 64
) -> redis.Redis:
    """A client that gives up quickly: a request path would rather answer 503 than hang. The
    pool is bounded: a burst of requests queues for a connection instead of opening hundreds."""
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "timeout": timeout,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 15,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    }
    if is_sentinel_url(url):
        client: redis.Redis = _sentinel(url, timeout).master_for(
            sentinel_master,
            connection_pool_class=_BlockingSentinelPool,
            **_master_options(url),
            **options,
        )
        return client
    return redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(url, **options))


def make_subscriber(
    url: str, *, sentinel_master: str = "mymaster", connect_timeout: float = 2.0
) -> redis.Redis:
    """For a pub/sub subscription, which waits on its socket for as long as nothing happens."""
    options: dict[str, Any] = {
        "socket_timeout": None,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": 15,
    }
    if is_sentinel_url(url):
        client: redis.Redis = _sentinel(url, connect_timeout).master_for(
            sentinel_master, **_master_options(url), **options
        )
        return client
    return redis.Redis.from_url(url, **options)


def _sentinel(url: str, timeout: float) -> Sentinel:
    sentinels = []
    for part in url.split(";"):
        parts = urlsplit(part.strip())
        sentinels.append((parts.hostname or "127.0.0.1", parts.port or _SENTINEL_PORT))
    return Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        sentinels, socket_timeout=timeout, socket_connect_timeout=timeout
    )


def _master_options(url: str) -> dict[str, Any]:
    """The primary's password and database, as kombu reads them from the first sentinel URL."""
    first = urlsplit(url.split(";")[0])
    database = (first.path or "/0").strip("/") or "0"
    return {"password": first.password, "db": int(database)}
