"""Jobs pushed straight onto kombu's Redis queues are the messages Celery's own client writes,
and a broker that does not take them is a PublishFailed (the row stays queued for the sweeper)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis as redis_py
import redis.asyncio as redis

from shared.kit.jobs import (
    ROUTES,
    SEND_QUEUE,
    Job,
    PublishFailed,
    RedisJobQueue,
    job_headers,
    make_celery,
)
from shared.kit.redis_client import make_redis
from shared.kit.settings import Settings
from shared.kit.tracing import traced
from tests.conftest import make_settings

# What differs between any two messages, whoever writes them.
_PER_MESSAGE = {"id", "root_id", "argsrepr", "twostep_published_at", "origin"}
_PER_DELIVERY = {"correlation_id", "delivery_tag"}


@pytest.fixture
def prefixed(settings: Settings) -> Settings:
    return make_settings(
        settings.database_url, settings.redis_url, settings.twilio_base_url or "",
        redis_key_prefix=f"jobs-{uuid.uuid4().hex[:8]}:",
    )  # fmt: skip


@pytest.fixture
async def client(prefixed: Settings) -> AsyncIterator[redis.Redis]:
    client = make_redis(prefixed.redis_url)
    yield client
    async for key in client.scan_iter(f"{prefixed.redis_key_prefix}*"):
        await client.delete(key)
    await client.aclose()


def _pop(prefixed: Settings, queue: str) -> dict[str, Any]:
    with redis_py.Redis.from_url(prefixed.redis_url) as broker:
        raw = broker.rpop(prefixed.redis_key_prefix + queue)
    assert raw is not None, f"nothing in {queue}"
    message: dict[str, Any] = json.loads(raw)
    return message


async def test_a_pushed_job_is_the_message_celery_writes(
    prefixed: Settings, client: redis.Redis
) -> None:
    app = make_celery(prefixed, main="twostep.test")
    job = Job.send_code(uuid.uuid4())
    try:
        app.send_task(
            job.name, args=[str(job.entity_id)], headers=job_headers("req-jobs-1"),
            queue=ROUTES[job.name],
        )  # fmt: skip
        with traced("req-jobs-1"):
            await RedisJobQueue(app, client, key_prefix=prefixed.redis_key_prefix).publish([job])
    finally:
        app.close()
    celerys, ours = _pop(prefixed, SEND_QUEUE), _pop(prefixed, SEND_QUEUE)

    assert base64.b64decode(ours["body"]) == base64.b64decode(celerys["body"])
    assert {k: v for k, v in ours.items() if k not in ("body", "headers", "properties")} == {
        k: v for k, v in celerys.items() if k not in ("body", "headers", "properties")
    }
    same_headers = {k: v for k, v in ours["headers"].items() if k not in _PER_MESSAGE}
    assert same_headers == {k: v for k, v in celerys["headers"].items() if k not in _PER_MESSAGE}
    assert ours["headers"]["argsrepr"] == celerys["headers"]["argsrepr"].replace('"', "'")
    assert ours["headers"]["id"] == ours["properties"]["correlation_id"]
    same_properties = {k: v for k, v in ours["properties"].items() if k not in _PER_DELIVERY}
    assert same_properties == {
        k: v for k, v in celerys["properties"].items() if k not in _PER_DELIVERY
    }
    assert ours["headers"]["twostep_request_id"] == "req-jobs-1"


async def test_a_commits_jobs_go_each_to_its_queue(prefixed: Settings, client: redis.Redis) -> None:
    app = make_celery(prefixed, main="twostep.test")
    jobs = [Job.send_code(uuid.uuid4()), Job.check_code(uuid.uuid4())]
    try:
        await RedisJobQueue(app, client, key_prefix=prefixed.redis_key_prefix).publish(jobs)
    finally:
        app.close()
    for job in jobs:
        message = _pop(prefixed, ROUTES[job.name])
        assert message["headers"]["task"] == job.name
        assert json.loads(base64.b64decode(message["body"]))[0] == [str(job.entity_id)]


async def test_a_broker_that_does_not_answer_is_a_publish_failed(prefixed: Settings) -> None:
    app = make_celery(prefixed, main="twostep.test")
    unreachable = make_redis("redis://127.0.0.1:9/0", timeout=0.5)
    try:
        with pytest.raises(PublishFailed, match=r"twostep\.send_code"):
            await RedisJobQueue(app, unreachable).publish([Job.send_code(uuid.uuid4())])
    finally:
        await unreachable.aclose()
        app.close()
