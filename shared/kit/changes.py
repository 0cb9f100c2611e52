"""Change notices: how a waiting request learns, without polling, that a row it waits on changed.

Whoever commits a change to a verification or a check publishes a notice on one Redis pub/sub
channel (``RedisChangeFeed``, after the commit): the row's id and, when the writer has it, the
row as the API shows it. Each API process holds one subscription (``ChangeListener``) and wakes
the requests waiting on those ids, handing them the row; a waiter holds no thread and no
connection, only an event. A notice is a hint, never the only truth: a waiter without a usable
row in its notice reads the database, and a lost notice (Redis restarted, a publish failed) only
means the waiter answers at its timeout with what the database says then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import redis.asyncio as redis
import structlog

from shared.kit import metrics
from shared.kit.redis_client import Script

log = structlog.get_logger(__name__)

_RECONNECT_DELAY_SECONDS = 1.0
# Rows whose last notice a listener remembers: a few seconds of a busy API's notices, enough for
# a request that wrote a row and enqueued its job to find the job's answer if it came before
# the request started waiting.
_RECENT_NOTICES = 4096


@dataclass(frozen=True, slots=True)
class Change:
    row_id: uuid.UUID
    # The row as the API shows it after the change, or None: then a waiter reads it.
    view: dict[str, Any] | None = None
    # What the row is ("verification", "check"): which webhook event the change may be.
    kind: str | None = None
    # Whose row it is (for the webhooks it causes), when the writer knows.
    tenant_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class Announcement:
    """Something that happened to a user's account that the login server should hear of (a
    factor added or removed, recovery codes made or used, a lock): written to the webhook
    outbox in the transaction that records it, and published to no waiter."""

    tenant_id: uuid.UUID
    event: str  # a shared.webhooks.domain.WebhookEvent
    data: dict[str, Any]


class ChangeFeed(Protocol):
    async def publish(self, changes: Iterable[Change]) -> None: ...


def changes_channel(key_prefix: str) -> str:
    return f"{key_prefix}twostep:changes"


# KEYS[1]: the channel; ARGV: the notices. One round trip for a commit's notices, without the
# cost of setting up a pipeline.
_PUBLISH_ALL = """
for _, notice in ipairs(ARGV) do redis.call('PUBLISH', KEYS[1], notice) end
return #ARGV
"""


class RedisChangeFeed:
    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._publish_all = Script(client, _PUBLISH_ALL)
        self._channel = channel

    async def publish(self, changes: Iterable[Change]) -> None:
        notices = [json.dumps({"id": str(c.row_id), "view": c.view}) for c in changes]
        await self._publish_all(keys=[self._channel], args=notices)


class MaybeMissed(Exception):
    """A notice may have come unseen (see ``ChangeListener.heard_since``): read the row."""


class Mark(NamedTuple):
    """Where a listener stood: its subscription and the last notice it had heard."""

    subscription: int
    notice: int


# Remembered for a row whose last notice carried no row: it changed, how is unknown.
_UNKNOWN: dict[str, Any] = {}


class TooManyWaiters(Exception):
    """This process holds as many waiters as it may; the caller answers without waiting."""


@dataclass(eq=False)
class Waiter:
    """Set when a notice for its row arrives (carrying the row, when the notice had it), or
    when notices may have been missed (carrying nothing: read the row)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    view: dict[str, Any] | None = None

    def wake(self, view: dict[str, Any] | None) -> None:
        self.view = view
        self.event.set()

    def rearm(self) -> None:
        self.view = None
        self.event.clear()


class ChangeListener:
    """One subscription per process, fanned out to the waiters registered with ``watch``."""

    def __init__(self, client: redis.Redis, channel: str, *, max_waiters: int) -> None:
        self._redis = client
        self._channel = channel
        self._max_waiters = max_waiters
        self._waiters: dict[uuid.UUID, set[Waiter]] = {}
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        # Row id → (the notice's number, its row). Numbers count the notices heard; a notice
        # forgotten to make room is one a waiter can no longer find here.
        self._recent: OrderedDict[uuid.UUID, tuple[int, dict[str, Any]]] = OrderedDict()
        self._notices = 0
        self._forgotten_through = 0
        # Counts the subscriptions this listener has made: while it is unchanged and connected,
        # no notice was missed.
        self._subscriptions = 0
        # Set when the process is told to stop: no request waits any more.
        self.draining = False

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

    def drain(self) -> None:
        """The process is stopping: every held wait answers now with the row as it is (the
        client asks again, of another process), and none waits from here on."""
        self.draining = True
        for waiters in list(self._waiters.values()):
            for waiter in list(waiters):
                waiter.wake(None)

    def mark(self) -> Mark | None:
        """Where the listener stands now; None when it is not subscribed (notices are lost)."""
        if not self.connected.is_set():
            return None
        return Mark(self._subscriptions, self._notices)

    def heard_since(self, mark: Mark | None, row_id: uuid.UUID) -> dict[str, Any] | None:
        """The row as the last notice for ``row_id`` since ``mark`` left it; None if none came.
        Raises ``MaybeMissed`` if one may have come unseen: the listener was not subscribed all
        along, or has forgotten notices heard since, or the row's notice carried no row."""
        now = self.mark()
        if mark is None or now is None or mark.subscription != now.subscription:
            raise MaybeMissed
        if self._forgotten_through > mark.notice:
            raise MaybeMissed
        number, view = self._recent.get(row_id, (0, None))
        if number <= mark.notice:
            return None
        if view is _UNKNOWN:
            raise MaybeMissed
        return view

    @contextlib.asynccontextmanager
    async def watch(self, row_id: uuid.UUID) -> AsyncIterator[Waiter]:
        """Register before reading the row, so a change between the read and the wait is not
        missed."""
        if self._count >= self._max_waiters:
            raise TooManyWaiters(f"{self._count} requests are waiting already")
        waiter = Waiter()
        self._waiters.setdefault(row_id, set()).add(waiter)
        self._count += 1
        metrics.LONG_POLLS_WAITING.inc()
        try:
            yield waiter
        finally:
            self._count -= 1
            metrics.LONG_POLLS_WAITING.dec()
            waiters = self._waiters.get(row_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[row_id]

    def _deliver(self, data: bytes | str) -> None:
        try:
            notice = json.loads(data)
            row_id = uuid.UUID(notice["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("changes.unreadable_notice")
            return
        view = notice.get("view")
        view = view if isinstance(view, dict) else None
        self._remember(row_id, view)
        for waiter in self._waiters.get(row_id, ()):
            waiter.wake(view)

    def _remember(self, row_id: uuid.UUID, view: dict[str, Any] | None) -> None:
        self._notices += 1
        self._recent[row_id] = (self._notices, _UNKNOWN if view is None else view)
        self._recent.move_to_end(row_id)
        if len(self._recent) > _RECENT_NOTICES:
            _, (number, _) = self._recent.popitem(last=False)
            self._forgotten_through = number

    def _wake_everyone(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.wake(None)

    async def _listen(self) -> None:
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: notices may have been missed
                self.connected.clear()
                self._recent.clear()
                self._wake_everyone()
                log.warning("changes.listener_disconnected", error=repr(exc))
                await asyncio.sleep(_RECONNECT_DELAY_SECONDS)

    async def _consume(self) -> None:
        async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(self._channel)
            self._subscriptions += 1
            self.connected.set()
            # Anything published while we were not subscribed is lost: let waiters re-read.
            self._wake_everyone()
            while True:
                message = await pubsub.get_message(timeout=5.0)
                if message is not None and isinstance(message.get("data"), bytes | str):
                    self._deliver(message["data"])
