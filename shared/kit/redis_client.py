"""Redis clients (asyncio). Every process shares one bounded pool per purpose.

Commands that tasks of one event loop issue in the same turn of the loop go to Redis together, in
one pipeline (``CoalescingRedis``): under load, the limits, the stash, the gate and the notices of
many requests cost one round trip where they cost one each. redis-py has no such mode (its issue
#3767); ioredis and node-redis call it auto-pipelining.

``TWOSTEP_REDIS_URL`` is a plain ``redis://`` URL or, for a primary watched by Redis Sentinel, a
list of sentinels as kombu writes it — ``sentinel://h1:26379;sentinel://h2:26379/0`` (with
``TWOSTEP_REDIS_SENTINEL_MASTER`` naming the primary). Through Sentinel a client asks where the
primary is before it connects, and again after a failover.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import NoScriptError
from redis.typing import EncodableT, KeyT

_SENTINEL_PORT = 26379
T = TypeVar("T")


def is_sentinel_url(url: str) -> bool:
    return url.startswith("sentinel://")


class _BlockingSentinelPool(SentinelConnectionPool, redis.BlockingConnectionPool):
    """Sentinel's pool (it follows the primary) that waits for a connection when all are in
    use, as a plain pool does here, instead of failing."""


@dataclass(frozen=True, slots=True)
class _Pending:
    args: tuple[Any, ...]
    options: dict[str, Any]
    answer: asyncio.Future[Any]


# Commands that wait on the server, or change the connection they run on: never batched.
_ALONE = frozenset(
    {
        "BLPOP", "BRPOP", "BLMOVE", "BLMPOP", "BRPOPLPUSH", "BZPOPMIN", "BZPOPMAX", "BZMPOP",
        "XREAD", "XREADGROUP", "WAIT", "WAITAOF", "SELECT", "WATCH", "MULTI", "EXEC",
        "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR",
    }
)  # fmt: skip


# Set in a task started by ``riding_along``: its commands wait for the next batch.
_RIDING = contextvars.ContextVar("twostep_redis_riding", default=False)
# How long a riding command waits for company before it goes alone.
RIDE_AT_MOST_SECONDS = 0.05


def riding_along(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``coroutine`` in a task of its own whose Redis commands (through a
    ``CoalescingRedis``) go out with the next batch the process sends anyway, or alone after
    ``RIDE_AT_MOST_SECONDS``: for what nobody waits on — a provider gate's slot given back
    rides with the change notice a few milliseconds later instead of costing a round trip."""
    context = contextvars.copy_context()
    context.run(_RIDING.set, True)
    return asyncio.get_running_loop().create_task(coroutine, context=context)


class CoalescingRedis(redis.Redis):
    """A client whose commands, issued in one turn of the event loop, are written together at
    the start of the next, their replies read in order on the same connection; each caller
    gets its own command's answer or error, as it would alone. A turn with one command sends it
    as a plain command. Pipelines and pub/sub are the client's own, unchanged.

    A connection lost midway costs only the commands whose replies did not come: those are sent
    once more on a new connection (as the client's retry would each of them), and a command
    whose reply came is never sent again. redis-py's own pipeline would resend them all."""

    _pending: list[_Pending] | None = None
    _riders: list[_Pending] | None = None
    _sending: set[asyncio.Task[None]] | None = None

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        if str(args[0]).upper() in _ALONE:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Any] = loop.create_future()
        if _RIDING.get():
            if self._riders is None:
                self._riders = []
                loop.call_later(RIDE_AT_MOST_SECONDS, self._send_riders)
            self._riders.append(_Pending(args, options, answer))
            return await answer
        if self._pending is None:
            self._pending = []
            loop.call_soon(self._send_pending)
        self._pending.append(_Pending(args, options, answer))
        return await answer

    def _send_riders(self) -> None:
        """Nothing else was sent meanwhile: the riders go alone."""
        if self._riders and self._pending is None:
            self._send_pending()

    def _send_pending(self) -> None:
        batch, self._pending = self._pending or [], None
        batch, self._riders = batch + (self._riders or []), None
        if self._sending is None:
            self._sending = set()
        task = asyncio.get_running_loop().create_task(self._send(batch))
        # The loop keeps only a weak reference to a task.
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Pending]) -> None:
        waiting = [pending for pending in batch if not pending.answer.done()]
        try:
            if len(waiting) == 1:
                alone = waiting[0]
                command = super().execute_command(*alone.args, **alone.options)  # type: ignore[no-untyped-call]
                _answer(alone, await command)
            elif waiting:
                try:
                    await self._send_together(waiting)
                except (redis.ConnectionError, redis.TimeoutError):
                    await self._send_together([p for p in waiting if not p.answer.done()])
        except Exception as exc:
            for pending in waiting:
                _answer(pending, exc)
        finally:
            for pending in waiting:
                # Nobody is left waiting forever, even if this task itself is cancelled.
                _answer(pending, redis.ConnectionError("the command's batch was not sent"))

    async def _send_together(self, batch: list[_Pending]) -> None:
        """One write for the batch, then each reply, in order, to its caller."""
        pool = self.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(
                connection.pack_commands([pending.args for pending in batch])
            )
            for pending in batch:
                try:
                    # parse_response takes its options apart: a copy, for a second try.
                    options = dict(pending.options)
                    _answer(
                        pending, await self.parse_response(connection, pending.args[0], **options)
                    )
                except redis.ResponseError as error:  # this command's alone
                    _answer(pending, error)
        except BaseException:
            # Replies may be left unread on it: nobody else may use it.
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)


def _answer(pending: _Pending, answer: Any) -> None:
    if pending.answer.done():
        return
    if isinstance(answer, Exception):
        pending.answer.set_exception(answer)
    else:
        pending.answer.set_result(answer)


class Script:
    """A Lua script, run by its SHA1 and loaded when Redis does not know it: what redis-py's
    ``register_script`` gives, without its check on every call of whether the client is a
    pipeline (an ``isinstance`` against a class built on ``typing.Protocol``, which cost a
    worker 0.5 to 2.5 % of its CPU)."""

    def __init__(self, client: redis.Redis, source: str) -> None:
        self._client = client
        self._source = source
        # Redis names a script by its SHA1.
        self._sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, keys: Sequence[KeyT] = (), args: Iterable[EncodableT] = ()) -> Any:
        arguments = (*keys, *args)
        try:
            return await self._client.evalsha(self._sha, len(keys), *arguments)  # type: ignore[misc]  # typed sync or async
        except NoScriptError:
            self._sha = await self._client.script_load(self._source)
            return await self._client.evalsha(self._sha, len(keys), *arguments)  # type: ignore[misc]


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
            redis_class=CoalescingRedis,
            connection_pool_class=_BlockingSentinelPool,
            **_master_options(url),
            **options,
        )
        return client
    return CoalescingRedis.from_pool(redis.BlockingConnectionPool.from_url(url, **options))


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
