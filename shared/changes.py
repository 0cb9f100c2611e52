"""Change notices: how a waiting request learns, without polling, that a row it waits on changed.

Whoever commits a change to a verification or a check publishes its id on one Redis pub/sub
channel (``RedisChangeFeed``, after the commit). Each API process holds one subscription
(``ChangeListener``) and wakes the requests waiting on those ids; a waiter holds no thread and
no connection, only an event. A notice is a hint, never the truth: a woken waiter re-reads the
row, and a lost notice (Redis restarted, a publish failed) only means the waiter answers at its
timeout with what the database says then.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from typing import Protocol

import redis.asyncio as redis
import structlog

log = structlog.get_logger(__name__)

_RECONNECT_DELAY_SECONDS = 1.0


class ChangeFeed(Protocol):
    async def publish(self, row_ids: Iterable[uuid.UUID]) -> None: ...


def changes_channel(key_prefix: str) -> str:
    return f"{key_prefix}twostep:changes"


class RedisChangeFeed:
    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._redis = client
        self._channel = channel

    async def publish(self, row_ids: Iterable[uuid.UUID]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for row_id in row_ids:
                pipe.publish(self._channel, row_id.hex)
            await pipe.execute()


class TooManyWaiters(Exception):
    """This process holds as many waiters as it may; the caller answers without waiting."""


class ChangeListener:
    """One subscription per process, fanned out to the waiters registered with ``watch``."""

    def __init__(self, client: redis.Redis, channel: str, *, max_waiters: int) -> None:
        self._redis = client
        self._channel = channel
        self._max_waiters = max_waiters
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    @property
    def waiting(self) -> int:
        return self._count

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="change-listener")

    async def stop(self) -> None:
        """Stop listening and close the subscription's connection (it is this listener's own)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._redis.aclose()

    @contextlib.asynccontextmanager
    async def watch(self, row_id: uuid.UUID) -> AsyncIterator[asyncio.Event]:
        """An event set when a notice for ``row_id`` arrives (or when notices may have been
        missed). Register before reading the row, so a change between the read and the wait
        is not missed."""
        if self._count >= self._max_waiters:
            raise TooManyWaiters(f"{self._count} requests are waiting already")
        changed = asyncio.Event()
        self._waiters.setdefault(row_id, set()).add(changed)
        self._count += 1
        try:
            yield changed
        finally:
            self._count -= 1
            events = self._waiters.get(row_id)
            if events is not None:
                events.discard(changed)
                if not events:
                    del self._waiters[row_id]

    def _wake(self, row_id: uuid.UUID) -> None:
        for changed in self._waiters.get(row_id, ()):
            changed.set()

    def _wake_everyone(self) -> None:
        for events in self._waiters.values():
            for changed in events:
                changed.set()

    async def _listen(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: notices may have been missed
                self.connected.clear()
                self._wake_everyone()
                log.warning("changes.listener_disconnected", error=repr(exc))
                await asyncio.sleep(_RECONNECT_DELAY_SECONDS)

    async def _consume(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self._channel)
            self.connected.set()
            # Anything published while we were not subscribed is lost: let waiters re-read.
            self._wake_everyone()
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is None:
                    continue
                data = message.get("data")
                if isinstance(data, bytes | str):
                    with contextlib.suppress(ValueError):
                        self._wake(
                            uuid.UUID(hex=data.decode() if isinstance(data, bytes) else data)
                        )
