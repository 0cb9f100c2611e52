"""Per-process singletons of a worker, built once when it is ready (or by its first job), and
closed at shutdown.

A worker process runs one asyncio event loop in a thread of its own (an anyio blocking portal),
and on it the database pool, Redis, the provider client and the services. Celery's threads run
the tasks; each task hands its job to the loop and waits for the answer. So a job waiting on
Twilio costs one parked thread and a coroutine — no database connection, no CPU — and hundreds
are in flight at once with a pool of a few connections.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TypeVar

import redis.asyncio as redis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from celery import Celery

from shared.kit import crypto
from shared.kit.changes import RedisChangeFeed, changes_channel
from shared.kit.clock import SystemClock
from shared.kit.db.session import AfterCommit, Database
from shared.kit.jobs import CeleryJobQueue
from shared.kit.redis_client import make_redis
from shared.kit.settings import Settings
from shared.kit.tracing import traced
from shared.kit.warm_up import warm_up
from shared.limits.gate import RedisProviderGate
from shared.limits.lockout import RedisLockout
from shared.operations.retention import Retention
from shared.operations.status import Fleet
from shared.operations.sweeper import Sweeper
from shared.tenants.service import TenantDirectory
from shared.unit_of_work import UnitOfWorkFactory
from shared.verifications.code_jobs import CodeJobs
from shared.verifications.codes import RedisCodeStash
from shared.verifications.notices import CountedChangeFeed
from shared.verifications.numbers import NumberChecks, RedisLineTypes
from shared.verify.twilio import TwilioVerifyClient
from shared.webhooks.http import AiohttpPoster
from shared.webhooks.outbox import WebhookOutbox
from shared.webhooks.sender import WebhookSender

T = TypeVar("T")


@dataclass
class WorkerServices:
    """Everything a worker's jobs use, living on the worker's event loop."""

    database: Database
    redis: redis.Redis
    verify: TwilioVerifyClient
    code_jobs: CodeJobs
    sweeper: Sweeper
    retention: Retention
    fleet: Fleet
    webhooks: WebhookSender
    poster: AiohttpPoster

    @classmethod
    async def build(cls, settings: Settings, app: Celery) -> WorkerServices:
        keyring = settings.keyring()
        crypto.install(keyring)
        database = Database.connect(settings.database_url, pool_size=settings.database_pool_size)
        client = make_redis(
            settings.redis_url, sentinel_master=settings.redis_sentinel_master, timeout=5
        )
        clock = SystemClock()
        uow_factory = UnitOfWorkFactory(
            database,
            AfterCommit(
                jobs=CeleryJobQueue(app),
                changes=CountedChangeFeed(
                    RedisChangeFeed(client, changes_channel(settings.redis_key_prefix))
                ),
                outbox=WebhookOutbox(settings, clock),
            ),
        )
        verify = TwilioVerifyClient(settings)
        poster = AiohttpPoster(
            settings.webhook_timeout_seconds,
            public_only=not settings.webhooks_may_reach_private_networks,
        )
        stash = RedisCodeStash(client, settings.redis_key(""), keyring)
        code_jobs = CodeJobs(
            uow_factory=uow_factory,
            verify=verify,
            stash=stash,
            gate=RedisProviderGate(settings, client),
            lockout=RedisLockout(settings, client, keyring),
            settings=settings,
            clock=clock,
            tenants=TenantDirectory(uow_factory.reading, settings, verify.default_service),
            numbers=NumberChecks(
                verify, RedisLineTypes(client, settings), keyring, settings, clock
            ),
        )
        return cls(
            database,
            client,
            verify,
            code_jobs,
            Sweeper(uow_factory, settings, clock, stash),
            Retention(uow_factory, settings, clock),
            Fleet(settings, client),
            WebhookSender(uow_factory, poster, settings, clock),
            poster,
        )

    async def sweep(self) -> None:
        """A sweep, then what ops read of it: its time, the queues and the workers alive."""
        await self.sweeper.sweep()
        await self.fleet.stamp_sweep()
        await self.fleet.publish_metrics()

    async def close(self) -> None:
        await self.verify.close()
        await self.poster.close()
        await self.redis.aclose()
        await self.database.dispose()


class WorkerContext:
    """The worker's event loop thread and the services on it."""

    def __init__(self, settings: Settings, app: Celery, node: str) -> None:
        self._portal_manager: AbstractContextManager[BlockingPortal] = start_blocking_portal(
            "asyncio", {"use_uvloop": True}
        )
        self._portal = self._portal_manager.__enter__()
        try:
            self.services = self._portal.call(WorkerServices.build, settings, app)
            self._portal.call(warm_up, self.services.database, app)
        except BaseException:
            self._portal_manager.__exit__(None, None, None)
            raise
        self._heartbeat = self._portal.start_task_soon(self.services.fleet.heartbeat_forever, node)

    def run(
        self, job: Callable[[WorkerServices], Awaitable[T]], request_id: str | None = None
    ) -> T:
        """Run a job on the loop, from any thread, and wait for its answer; its log lines carry
        the id of the request that caused it."""
        return self._portal.call(_traced, job, self.services, request_id)

    def close(self) -> None:
        self._heartbeat.cancel()
        try:
            self._portal.call(self.services.close)
        finally:
            self._portal_manager.__exit__(None, None, None)


async def _traced(
    job: Callable[[WorkerServices], Awaitable[T]],
    services: WorkerServices,
    request_id: str | None,
) -> T:
    with traced(request_id):
        return await job(services)


class ContextHolder:
    def __init__(self, settings: Settings, app: Celery) -> None:
        self._settings = settings
        self._app = app
        self._context: WorkerContext | None = None
        self._lock = threading.Lock()
        # The name the worker's heartbeat goes by: its Celery node name, once it is known.
        self.node = f"{socket.gethostname()}-{os.getpid()}"

    def get(self) -> WorkerContext:
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._context = WorkerContext(self._settings, self._app, self.node)
        return self._context

    def close(self) -> None:
        with self._lock:
            if self._context is not None:
                self._context.close()
                self._context = None
