"""What the fleet looks like right now, from Redis and SQL: the queues and their oldest job,
the workers that are alive (their heartbeats), the sweeper's last run, the provider's recent
error rate, the oldest verifications still in flight.

Workers write a heartbeat every few seconds and the sweeper stamps each run; `twostep status`,
`/readyz` and the sweep's metrics read them here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as redis
import structlog

from shared.kit import metrics
from shared.kit.jobs import ALL_QUEUES, PUBLISHED_AT
from shared.kit.settings import Settings
from shared.limits.gate import provider_calls_key
from shared.unit_of_work import Repositories

log = structlog.get_logger(__name__)

HEARTBEAT_SECONDS = 5.0
# A worker is alive while its last heartbeat is younger than this.
ALIVE_SECONDS = 3 * HEARTBEAT_SECONDS
_ERROR_RATE_MINUTES = 5


@dataclass(frozen=True, slots=True)
class QueueState:
    name: str
    depth: int
    oldest_age_seconds: float | None  # None: empty, or a job without our timestamp


@dataclass(frozen=True, slots=True)
class WorkerState:
    name: str
    seen_seconds_ago: float


@dataclass(frozen=True, slots=True)
class ProviderState:
    calls: int
    failed: int

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.calls if self.calls else None


@dataclass(frozen=True, slots=True)
class Status:
    queues: Sequence[QueueState]
    workers: Sequence[WorkerState]
    sweeper_seconds_ago: float | None
    provider: ProviderState
    oldest_in_flight: tuple[str, float] | None  # (verification id, age in seconds)
    oldest_pending: tuple[str, float] | None


class Fleet:
    """Reads and writes the fleet's state in Redis (one instance per process)."""

    def __init__(self, settings: Settings, client: redis.Redis) -> None:
        self._settings = settings
        self._redis = client
        self._heartbeats = settings.redis_key("heartbeat:")
        self._sweeper = settings.redis_key("sweeper:last-run")

    # --- written by the workers and the sweeper

    async def heartbeat_forever(self, node: str) -> None:
        """Say this worker is alive, every few seconds, until cancelled."""
        while True:
            try:
                await self._redis.set(
                    f"{self._heartbeats}{node}", str(time.time()), ex=int(ALIVE_SECONDS)
                )
            except redis.RedisError as exc:  # Redis comes back, and so will the heartbeat
                log.warning("worker.heartbeat_failed", error=type(exc).__name__)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def stamp_sweep(self) -> None:
        await self._redis.set(self._sweeper, str(time.time()), ex=3600)

    # --- read by status, readiness and the sweep's metrics

    async def queues(self) -> list[QueueState]:
        prefix = self._settings.redis_key_prefix
        states = []
        for name in ALL_QUEUES:
            key = f"{prefix}{name}"
            depth = int(await cast(Awaitable[int], self._redis.llen(key)))
            # kombu pushes on the left and pops on the right: the oldest job is the last.
            oldest = await cast(Awaitable[Any], self._redis.lindex(key, -1)) if depth else None
            states.append(QueueState(name, depth, _age_of(oldest)))
        return states

    async def workers(self) -> list[WorkerState]:
        now, alive = time.time(), []
        async for key in self._redis.scan_iter(match=f"{self._heartbeats}*", count=200):
            raw = await self._redis.get(key)
            if raw is not None:
                name = key.decode()[len(self._heartbeats) :]
                alive.append(WorkerState(name, max(0.0, now - float(raw))))
        return sorted(alive, key=lambda worker: worker.name)

    async def seen_seconds_ago(self, node: str) -> float | None:
        """How long ago the worker ``node`` sent its heartbeat; None: not within
        ``ALIVE_SECONDS`` (or never)."""
        raw = await self._redis.get(f"{self._heartbeats}{node}")
        return None if raw is None else max(0.0, time.time() - float(raw))

    async def sweeper_seconds_ago(self) -> float | None:
        raw = await self._redis.get(self._sweeper)
        return None if raw is None else max(0.0, time.time() - float(raw))

    async def provider(self) -> ProviderState:
        minute = int(time.time() // 60)
        base = provider_calls_key(self._settings)
        calls = failed = 0
        for past in range(_ERROR_RATE_MINUTES):
            counts = await cast(
                Awaitable[dict[bytes, bytes]], self._redis.hgetall(f"{base}:{minute - past}")
            )
            ok, bad = int(counts.get(b"ok", 0)), int(counts.get(b"failed", 0))
            calls, failed = calls + ok + bad, failed + bad
        return ProviderState(calls, failed)

    async def status(self, rows: Repositories) -> Status:
        in_flight, pending = await rows.verifications.oldest_not_final()
        now = time.time()
        return Status(
            queues=await self.queues(),
            workers=await self.workers(),
            sweeper_seconds_ago=await self.sweeper_seconds_ago(),
            provider=await self.provider(),
            oldest_in_flight=_aged(in_flight, now),
            oldest_pending=_aged(pending, now),
        )

    async def publish_metrics(self) -> None:
        """The queues and the workers alive, as gauges (the sweep calls it)."""
        for queue in await self.queues():
            metrics.QUEUE_DEPTH.labels(queue=queue.name).set(queue.depth)
            metrics.QUEUE_OLDEST_AGE.labels(queue=queue.name).set(queue.oldest_age_seconds or 0)
        metrics.WORKERS_ALIVE.set(len(await self.workers()))


def _age_of(message: Any) -> float | None:
    if message is None:
        return None
    with contextlib.suppress(ValueError, TypeError, KeyError):
        published = float(json.loads(message)["headers"][PUBLISHED_AT])
        return max(0.0, time.time() - published)
    return None


def _aged(found: tuple[Any, Any] | None, now: float) -> tuple[str, float] | None:
    if found is None:
        return None
    row_id, created_at = found
    return str(row_id), max(0.0, now - created_at.timestamp())
