"""A request that has just written a check waits on it without reading it back: it starts from
what it wrote, or from the notice the job's answer sent if that came first — unless the
listener may have missed a notice meanwhile, when it reads the database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest
import redis.asyncio as redis

from shared.kit import changes
from shared.kit.changes import Change, ChangeListener, Mark, RedisChangeFeed
from shared.kit.redis_client import make_redis, make_subscriber
from shared.kit.settings import Settings
from shared.unit_of_work import UnitOfWork
from shared.verifications.service import Verifications
from shared.verifications.waiting import Waiting, Written

TENANT, VERIFICATION = uuid.uuid4(), uuid.uuid4()


class ReadTheDatabase(Exception):
    pass


def _no_reads() -> UnitOfWork:
    raise ReadTheDatabase


@pytest.fixture
async def channel() -> str:
    return f"waiting-{uuid.uuid4().hex[:8]}:changes"


@pytest.fixture
async def feed(settings: Settings, channel: str) -> AsyncIterator[RedisChangeFeed]:
    client: redis.Redis = make_redis(settings.redis_url)
    yield RedisChangeFeed(client, channel)
    await client.aclose()


@pytest.fixture
async def listener(settings: Settings, channel: str) -> AsyncIterator[ChangeListener]:
    listener = ChangeListener(make_subscriber(settings.redis_url), channel, max_waiters=10)
    listener.start()
    await asyncio.wait_for(listener.connected.wait(), timeout=10)
    yield listener
    await listener.stop()


def _waiting(listener: ChangeListener) -> Waiting:
    return Waiting(_no_reads, cast(Verifications, None), listener)


async def _first_look(waiting: Waiting, check_id: uuid.UUID, written: Written | None) -> None:
    """Wait up to 30 s on a check nobody answers: a waiter that must read does so at once, not
    at the deadline (the read raises ReadTheDatabase; waiting on instead times out here)."""
    async with asyncio.timeout(3):
        await waiting.check(TENANT, VERIFICATION, check_id, 30, written)


def _check(check_id: uuid.UUID, status: str) -> dict[str, Any]:
    return {"id": str(check_id), "verification_id": str(VERIFICATION), "status": status}


async def _heard(listener: ChangeListener, mark: Mark | None, check_id: uuid.UUID) -> None:
    async with asyncio.timeout(10):
        while listener.heard_since(mark, check_id) is None:
            await asyncio.sleep(0.01)


async def test_an_answer_that_came_before_the_wait_is_taken_from_its_notice(
    listener: ChangeListener, feed: RedisChangeFeed
) -> None:
    waiting, check_id = _waiting(listener), uuid.uuid4()
    mark = waiting.mark()
    written = Written(_check(check_id, "queued"), mark)
    await feed.publish([Change(check_id, _check(check_id, "approved"))])
    await _heard(listener, mark, check_id)

    view = await waiting.check(TENANT, VERIFICATION, check_id, 5, written)

    assert view["status"] == "approved"


async def test_an_answer_that_comes_during_the_wait_ends_it_without_a_read(
    listener: ChangeListener, feed: RedisChangeFeed
) -> None:
    waiting, check_id = _waiting(listener), uuid.uuid4()
    written = Written(_check(check_id, "queued"), waiting.mark())

    async def answer_later() -> None:
        await asyncio.sleep(0.2)
        await feed.publish([Change(check_id, _check(check_id, "rejected"))])

    answering = asyncio.create_task(answer_later())
    view = await waiting.check(TENANT, VERIFICATION, check_id, 10, written)
    await answering

    assert view["status"] == "rejected"


async def test_a_listener_that_may_have_missed_a_notice_makes_the_waiter_read(
    listener: ChangeListener,
) -> None:
    waiting, check_id = _waiting(listener), uuid.uuid4()
    now = cast(Mark, waiting.mark())
    before_a_reconnect = Mark(now.subscription - 1, now.notice)
    written = Written(_check(check_id, "queued"), before_a_reconnect)

    with pytest.raises(ReadTheDatabase):
        await _first_look(waiting, check_id, written)
    with pytest.raises(ReadTheDatabase):  # a request that wrote nothing reads first
        await _first_look(waiting, check_id, None)


async def test_a_notice_the_listener_has_forgotten_makes_the_waiter_read(
    listener: ChangeListener, feed: RedisChangeFeed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "_RECENT_NOTICES", 2)
    waiting, check_id = _waiting(listener), uuid.uuid4()
    mark = waiting.mark()
    written = Written(_check(check_id, "queued"), mark)
    others = [uuid.uuid4() for _ in range(2)]
    await feed.publish(
        [Change(check_id, _check(check_id, "approved"))]
        + [Change(other, _check(other, "queued")) for other in others]
    )
    heard = cast(Mark, mark).notice + 3
    async with asyncio.timeout(10):  # the row's own notice made room for the other two
        while cast(Mark, listener.mark()).notice < heard:
            await asyncio.sleep(0.01)

    with pytest.raises(ReadTheDatabase):
        await _first_look(waiting, check_id, written)
