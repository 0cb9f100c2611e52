"""Commands issued in one turn of the event loop share a round trip, and each caller still gets
its own command's answer or error, as it would alone."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, cast

import pytest
import redis.asyncio as redis
from redis.exceptions import ResponseError

from shared.kit.redis_client import (
    RIDE_AT_MOST_SECONDS,
    CoalescingRedis,
    Script,
    make_redis,
    riding_along,
)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.Redis]:
    coalescing = make_redis(redis_url)
    yield coalescing
    await coalescing.aclose()


@pytest.fixture
async def observer(redis_url: str) -> AsyncIterator[redis.Redis]:
    plain = redis.Redis.from_url(redis_url)
    yield plain
    await plain.aclose()


def _key() -> str:
    return f"coalescing-test:{uuid.uuid4().hex}"


async def _replies_sent(observer: redis.Redis) -> int:
    """How many times the server has written replies to its clients so far."""
    return int((await observer.info("stats"))["total_writes_processed"])


async def test_each_caller_gets_its_own_answer(client: redis.Redis) -> None:
    counter, text = _key(), _key()
    answers = await asyncio.gather(
        *(client.incr(counter) for _ in range(20)),
        client.set(text, "hello", ex=60),
        cast(Awaitable[Any], client.hget(_key(), "nothing")),
    )
    assert sorted(answers[:20]) == list(range(1, 21))
    assert answers[20:] == [True, None]
    assert await client.get(text) == b"hello"


async def test_commands_of_one_turn_share_a_round_trip(
    client: redis.Redis, observer: redis.Redis
) -> None:
    counter = _key()
    await cast(Awaitable[bool], client.ping())  # the connection is open before counting
    before = await _replies_sent(observer)
    await asyncio.gather(*(client.incr(counter) for _ in range(50)))
    after = await _replies_sent(observer)
    # One reply for the batch (a large one may take a second write) and one for INFO itself.
    assert after - before <= 3, f"{after - before} replies for 50 commands"
    assert await client.get(counter) == b"50"


async def test_an_error_is_its_commands_alone(client: redis.Redis) -> None:
    wrong = _key()
    await client.set(wrong, "a string")
    right = _key()
    answers = await asyncio.gather(
        cast(Awaitable[int], client.hincrby(wrong, "field", 1)),
        client.incr(right),
        return_exceptions=True,
    )
    assert isinstance(answers[0], ResponseError)
    assert answers[1] == 1


async def test_a_script_the_server_forgot_is_loaded_again(client: redis.Redis) -> None:
    script = client.register_script("return redis.call('INCR', KEYS[1])")
    key = _key()
    assert await script(keys=[key]) == 1
    await cast(Awaitable[Any], client.script_flush())
    # Both calls meet NOSCRIPT in one batch; each loads the script and runs once.
    assert sorted(await asyncio.gather(script(keys=[key]), script(keys=[key]))) == [2, 3]


async def test_a_caller_that_gave_up_first_sends_nothing(client: redis.Redis) -> None:
    key = _key()
    abandoned = asyncio.ensure_future(client.incr(key))
    await asyncio.sleep(0)  # its command waits for the end of this turn
    abandoned.cancel()
    await asyncio.gather(abandoned, return_exceptions=True)
    assert await client.get(key) is None


async def test_a_lost_connection_fails_every_caller_of_the_batch() -> None:
    nowhere = make_redis("redis://127.0.0.1:1/0", timeout=0.5)
    try:
        answers = await asyncio.gather(
            nowhere.get(_key()), nowhere.get(_key()), return_exceptions=True
        )
    finally:
        await nowhere.aclose()
    assert all(isinstance(answer, redis.ConnectionError) for answer in answers), answers


async def test_a_connection_lost_midway_sends_again_only_the_commands_without_a_reply(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, third = _key(), _key(), _key()
    replies = 0
    parse = CoalescingRedis.parse_response

    async def lost_at_the_second_reply(
        self: redis.Redis, connection: Any, *args: Any, **kw: Any
    ) -> Any:
        nonlocal replies
        replies += 1
        if replies == 2:
            raise redis.ConnectionError("lost")
        return await parse(self, connection, *args, **kw)

    monkeypatch.setattr(CoalescingRedis, "parse_response", lost_at_the_second_reply)
    answers = await asyncio.gather(client.incr(first), client.incr(second), client.incr(third))
    # All three ran once; the two whose replies were lost ran once more (as a plain client's
    # retry would run each), the one whose reply came did not.
    assert list(answers) == [1, 2, 2]
    assert [await client.get(key) for key in (first, second, third)] == [b"1", b"2", b"2"]


async def _set(client: redis.Redis, key: str, value: str) -> Any:
    return await client.set(key, value, ex=60)


async def test_a_riding_command_goes_with_the_next_batch(
    client: redis.Redis, observer: redis.Redis
) -> None:
    riding, counter = _key(), _key()
    await cast(Awaitable[bool], client.ping())
    before = await _replies_sent(observer)
    rider = riding_along(_set(client, riding, "along"))
    # Long enough for a command of its own to have gone and come back; shorter than its wait.
    await asyncio.sleep(RIDE_AT_MOST_SECONDS / 5)
    assert not rider.done(), "the rider went alone"
    await client.incr(counter)  # the next batch takes it along
    assert await rider is True
    # One reply for the batch, rider included, and one for INFO itself.
    sent = await _replies_sent(observer) - before
    assert sent == 2, f"{sent} replies: the rider cost a round trip of its own"
    assert await client.get(riding) == b"along"


async def test_a_riding_command_with_no_company_goes_alone_soon(client: redis.Redis) -> None:
    riding = _key()
    await cast(Awaitable[bool], client.ping())
    started = asyncio.get_running_loop().time()
    assert await riding_along(_set(client, riding, "alone")) is True
    waited = asyncio.get_running_loop().time() - started
    assert waited >= RIDE_AT_MOST_SECONDS * 0.9, "a rider went before its wait for company"
    assert await client.get(riding) == b"alone"


async def test_a_script_is_loaded_again_when_redis_has_forgotten_it(
    client: redis.Redis, observer: redis.Redis
) -> None:
    """A restarted (or failed-over) Redis knows no script: the first call after it loads it."""
    source = f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1]}}"
    script = Script(client, source)
    counting = Script(client, "return redis.call('INCR', KEYS[1])")
    key = _key()
    assert await script(keys=[key], args=["first"]) == [key.encode(), b"first"]
    await observer.script_flush()
    # Several at once, in one round trip: each is answered, none with NOSCRIPT.
    answers = await asyncio.gather(
        script(keys=[key], args=["again"]), *(counting(keys=[key]) for _ in range(3))
    )
    assert answers[0] == [key.encode(), b"again"]
    assert sorted(answers[1:]) == [1, 2, 3]
