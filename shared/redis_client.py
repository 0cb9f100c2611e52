"""Redis clients (asyncio). Every process shares one bounded pool per purpose."""

from __future__ import annotations

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff


def make_redis(url: str, *, timeout: float = 2.0, max_connections: int = 64) -> redis.Redis:
    """A client that gives up quickly: a request path would rather answer 503 than hang. The
    pool is bounded: a burst of requests queues for a connection instead of opening hundreds."""
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    )
    return redis.Redis.from_pool(pool)


def make_subscriber(url: str, *, connect_timeout: float = 2.0) -> redis.Redis:
    """For a pub/sub subscription, which waits on its socket for as long as nothing happens."""
    return redis.Redis.from_url(
        url,
        socket_timeout=None,
        socket_connect_timeout=connect_timeout,
        health_check_interval=15,
    )
