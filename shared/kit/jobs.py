"""Jobs: their names, their queues, the JobQueue port and its Celery adapter.

Producers (the API, the sweeper) publish by task *name*; only ``workers`` registers the task
bodies. Arguments are row ids and nothing else: no phone number, no code, ever.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio
import redis.asyncio as redis
from celery import Celery

from shared.kit.broker import SENTINEL_TRANSPORT
from shared.kit.redis_client import is_sentinel_url
from shared.kit.settings import Settings
from shared.kit.tracing import current_request_id

SEND_CODE = "twostep.send_code"
CHECK_CODE = "twostep.check_code"
SWEEP = "twostep.sweep"
RETAIN = "twostep.retention"
DELIVER_WEBHOOK = "twostep.deliver_webhook"
CLOSE_VERIFICATION = "twostep.close_verification"

SEND_QUEUE = "twostep.send"
CHECK_QUEUE = "twostep.check"
SWEEP_QUEUE = "twostep.sweep"
# Deliveries wait on receivers nobody here controls: a queue of their own, so that a worker of
# their own (`twostep worker -Q twostep.webhooks`) keeps slow receivers away from sends.
WEBHOOK_QUEUE = "twostep.webhooks"
ALL_QUEUES = (SEND_QUEUE, CHECK_QUEUE, SWEEP_QUEUE, WEBHOOK_QUEUE)

ROUTES = {
    SEND_CODE: SEND_QUEUE,
    CHECK_CODE: CHECK_QUEUE,
    # A cancel at the provider is a call like a send's, under the same gate.
    CLOSE_VERIFICATION: SEND_QUEUE,
    SWEEP: SWEEP_QUEUE,
    RETAIN: SWEEP_QUEUE,
    DELIVER_WEBHOOK: WEBHOOK_QUEUE,
}


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    entity_id: uuid.UUID

    @classmethod
    def send_code(cls, verification_id: uuid.UUID) -> Job:
        return cls(SEND_CODE, verification_id)

    @classmethod
    def check_code(cls, check_id: uuid.UUID) -> Job:
        return cls(CHECK_CODE, check_id)

    @classmethod
    def deliver_webhook(cls, delivery_id: uuid.UUID) -> Job:
        return cls(DELIVER_WEBHOOK, delivery_id)

    @classmethod
    def close_verification(cls, verification_id: uuid.UUID) -> Job:
        return cls(CLOSE_VERIFICATION, verification_id)


# Headers of our own on every job: who caused it (the API's request id, for the logs) and when
# it was published (the age of a queue's oldest job, for the metrics and `twostep status`).
REQUEST_ID = "twostep_request_id"
PUBLISHED_AT = "twostep_published_at"


def job_headers(request_id: str | None) -> dict[str, object]:
    headers: dict[str, object] = {PUBLISHED_AT: time.time()}
    if request_id is not None:
        headers[REQUEST_ID] = request_id
    return headers


class PublishFailed(Exception):
    """The broker did not take the job. The row stays queued and the sweeper sends it later."""


class JobQueue(Protocol):
    async def publish(self, jobs: Sequence[Job]) -> None:
        """Hand the jobs to the broker, or raise PublishFailed."""
        ...


def make_celery(settings: Settings, main: str = "twostep") -> Celery:
    """A Celery app configured for twostep, with no tasks registered (producers need none)."""
    app = Celery(main, broker=settings.redis_url, set_as_current=False)
    if is_sentinel_url(settings.redis_url):
        app.conf.broker_transport = SENTINEL_TRANSPORT
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        event_serializer="json",
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        # Results live in SQL; no Celery result backend.
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=5,
        broker_transport_options=_transport_options(settings),
        worker_cancel_long_running_tasks_on_connection_loss=True,
        worker_soft_shutdown_timeout=15,
        worker_enable_soft_shutdown_on_idle=True,
        # Task events cost a Redis publish each, three or four per job. Flower switches a worker's
        # on while it watches (its enable_events); TWOSTEP_TASK_EVENTS keeps them on always.
        worker_send_task_events=settings.task_events,
        task_send_sent_event=settings.task_events,
        worker_hijack_root_logger=False,
        task_routes=ROUTES,
        task_default_queue=SEND_QUEUE,
        task_create_missing_queues=True,
        broker_pool_limit=16,
        timezone="UTC",
        enable_utc=True,
    )
    return app


def _transport_options(settings: Settings) -> dict[str, object]:
    options: dict[str, object] = {
        # kombu's ack emulation keeps each job a worker holds in Redis too (4 round trips a job)
        # to hand it to another worker once a visibility timeout has passed. twostep does not
        # need it: a job lost with its worker is published again by the sweeper from the row's
        # claim, well before any visibility timeout; a warm shutdown still puts back what the
        # worker held but had not started (kombu's in-memory QoS).
        "ack_emulation": False,
        # Without these a publish to a vanished Redis can wait forever.
        "socket_timeout": 5,
        "socket_connect_timeout": 5,
        "health_check_interval": 25,
        "retry_on_timeout": True,
    }
    if settings.redis_key_prefix:
        options["global_keyprefix"] = settings.redis_key_prefix
    if is_sentinel_url(settings.redis_url):
        options["master_name"] = settings.redis_sentinel_master
    return options


# Publishes at once per process: each holds one of Celery's pooled producers (a connection).
PUBLISHING_THREADS = 4


def connect_publisher(app: Celery) -> None:
    """Do now what the first publishes would do while a burst of requests waits behind them
    (a tenth of a second, some of it under Python's import lock): import the broker's transport,
    load Celery's result backend setting, open a connection for each publishing thread and
    declare the queues on it. Blocks: call it from a thread."""
    app.backend  # noqa: B018 -- loaded on first use, by the first send
    with contextlib.ExitStack() as held:
        for _ in range(PUBLISHING_THREADS):
            producer = held.enter_context(app.producer_or_acquire())
            producer.connection.ensure_connection(max_retries=1)
            for queue in ALL_QUEUES:
                producer.maybe_declare(app.amqp.queues[queue])


class RedisJobQueue:
    """Publishes straight onto kombu's Redis queues from the event loop: one LPUSH per job, all
    of a commit's jobs in one pipeline. The message is Celery's own (built by
    ``app.amqp.as_task_v2``, the worker cannot tell it apart from ``send_task``'s) in kombu's
    Redis envelope; what it saves is Celery's blocking client: a thread hop per commit, a
    producer checkout and the exchange's binding lookup per job.

    Celery's ``task-sent`` event is not sent: with ``TWOSTEP_TASK_EVENTS`` on, bootstrap uses
    ``CeleryJobQueue``."""

    def __init__(self, app: Celery, client: redis.Redis, *, key_prefix: str = "") -> None:
        self._app = app
        self._client = client
        self._key_prefix = key_prefix  # kombu's global_keyprefix: TWOSTEP_REDIS_KEY_PREFIX

    async def connect(self) -> None:
        """Open a connection before the first burst of publishes needs one."""
        await self._client.ping()  # type: ignore[misc]  # redis-py types it sync or async

    async def publish(self, jobs: Sequence[Job]) -> None:
        headers = job_headers(current_request_id())
        pipe = self._client.pipeline(transaction=False)
        for job in jobs:
            pipe.lpush(self._key_prefix + ROUTES[job.name], self.envelope(job, headers))
        try:
            await pipe.execute()
        except Exception as exc:  # RedisError mostly; whatever it is, the rows stay queued
            # The client has already retried a lost connection once (redis_client.make_redis).
            names = ", ".join(job.name for job in jobs)
            raise PublishFailed(f"{names}: {type(exc).__name__}") from exc

    def envelope(self, job: Job, headers: dict[str, object]) -> str:
        """The JSON kombu's Redis transport keeps in a queue's list for this job."""
        task_id = str(uuid.uuid4())
        entity_id = str(job.entity_id)
        message = self._app.amqp.as_task_v2(
            task_id,
            job.name,
            args=(entity_id,),
            kwargs={},
            reply_to=self._app.thread_oid,
            # As send_task leaves it (Celery types it bool): task_ignore_result decides.
            ignore_result=None,  # type: ignore[arg-type]
            argsrepr=repr([entity_id]),  # what saferepr writes for send_task's list, cheaper
            kwargsrepr="{}",
        )
        body = json.dumps(message.body).encode()
        properties: dict[str, Any] = {
            **message.properties,
            "delivery_mode": 2,  # persistent, as Celery's default queues declare
            "delivery_info": {"exchange": "", "routing_key": ROUTES[job.name]},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        }
        return json.dumps(
            {
                "body": base64.b64encode(body).decode(),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": {**message.headers, **headers},
                "properties": properties,
            }
        )


class CeleryJobQueue:
    """Publishes through Celery's own client, which blocks: in a few threads of its own, so the
    event loop never waits on the broker."""

    def __init__(self, app: Celery, *, threads: int = PUBLISHING_THREADS) -> None:
        self._app = app
        self._threads = anyio.CapacityLimiter(threads)

    async def connect(self) -> None:
        """Connect each publishing thread's producer (``connect_publisher``)."""
        await anyio.to_thread.run_sync(connect_publisher, self._app)

    async def publish(self, jobs: Sequence[Job]) -> None:
        headers = job_headers(current_request_id())
        await anyio.to_thread.run_sync(
            self._publish_all, list(jobs), headers, limiter=self._threads
        )

    def _publish_all(self, jobs: list[Job], headers: dict[str, object]) -> None:
        failed = []
        for job in jobs:
            try:
                self._app.send_task(
                    job.name,
                    args=[str(job.entity_id)],
                    headers=headers,
                    queue=ROUTES[job.name],
                    retry=True,
                    retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.2},
                )
            except Exception as exc:  # kombu raises a wide variety: OperationalError, timeouts…
                failed.append(f"{job.name}: {type(exc).__name__}")
        if failed:
            raise PublishFailed(", ".join(failed))
