"""The composition root (cosmicpython's ``bootstrap``): every process that does twostep's work —
the API, a worker, the command line, ``twostep dev`` — builds its core here, and tests build
theirs here too, with fakes passed in. (Beat only publishes; a worker's start-up check and
``twostep tenants create`` make a short-lived Twilio client of their own to ask one question.)

Adapters are parameters with production defaults; a process's own parts (a worker's provider
client and senders, the API's waiters and key cache) are built on first use, so each process
builds and opens only what it uses, and ``close`` closes exactly that.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial

import redis.asyncio as redis
from celery import Celery

from shared.kit import crypto
from shared.kit.changes import ChangeFeed, ChangeListener, RedisChangeFeed, changes_channel
from shared.kit.clock import Clock, SystemClock
from shared.kit.crypto import Keyring, keyring_of
from shared.kit.db.session import AfterCommit, Database
from shared.kit.jobs import CeleryJobQueue, JobQueue, RedisJobQueue, make_celery
from shared.kit.redis_client import make_redis, make_subscriber
from shared.kit.settings import Settings
from shared.kit.warm_up import warm_up
from shared.limits.gate import RedisProviderGate
from shared.limits.lockout import RedisLockout
from shared.limits.ports import Guards, ProviderGate
from shared.limits.sends import RedisActionLimit, RedisSendLimits
from shared.operations.retention import Retention
from shared.operations.status import Fleet
from shared.operations.sweeper import Sweeper
from shared.tenants.idempotency import KeyLocks, RedisKeyLocks
from shared.tenants.keys import ApiKeyCache
from shared.tenants.service import TenantDirectory
from shared.two_step.approvals import on_verification_approved
from shared.two_step.recovery import RecoveryCodes
from shared.two_step.service import TwoStep
from shared.unit_of_work import UnitOfWorkFactory
from shared.verifications.code_jobs import CodeJobs
from shared.verifications.codes import CodeStash, RedisCodeStash
from shared.verifications.notices import CountedChangeFeed
from shared.verifications.numbers import LineTypes, NumberChecks, RedisLineTypes
from shared.verifications.service import Verifications
from shared.verifications.waiting import Waiting
from shared.verify.port import VerifyProvider
from shared.webhooks.http import AiohttpPoster
from shared.webhooks.outbox import WebhookOutbox
from shared.webhooks.sender import Poster, WebhookSender
from shared.webhooks.service import Webhooks


@dataclass
class Adapters:
    """The ports' implementations a core uses; each left ``None`` gets its production one."""

    clock: Clock | None = None
    redis: redis.Redis | None = None
    celery: Celery | None = None
    jobs: JobQueue | None = None
    changes: ChangeFeed | None = None
    guards: Guards | None = None
    stash: CodeStash | None = None
    verify: VerifyProvider | None = None
    gate: ProviderGate | None = None
    line_types: LineTypes | None = None
    poster: Poster | None = None
    key_locks: KeyLocks | None = None
    # What the API's key cache measures its time with (monotonic seconds).
    key_timer: Callable[[], float] | None = None
    # False: the API's waiters are woken by no notice, and answer at their timeout.
    listen: bool = True


@dataclass
class Core:
    """One process's twostep: its stores and the services over them."""

    settings: Settings
    keyring: Keyring
    clock: Clock
    database: Database
    redis: redis.Redis
    celery: Celery
    uow_factory: UnitOfWorkFactory
    guards: Guards
    stash: CodeStash
    # What publishes jobs to the broker; None when an adapter takes the jobs instead.
    publisher: CeleryJobQueue | RedisJobQueue | None
    adapters: Adapters = field(repr=False)

    # --- what every process's use cases are

    @cached_property
    def verifications(self) -> Verifications:
        return Verifications(self.settings, self.guards, self.stash, self.clock, self.keyring)

    @cached_property
    def two_step(self) -> TwoStep:
        return TwoStep(self.verifications, self.keyring)

    @cached_property
    def recovery_codes(self) -> RecoveryCodes:
        return RecoveryCodes(self.guards.lockout, self.guards.recovery_code_sets, self.keyring)

    @cached_property
    def webhooks(self) -> Webhooks:
        return Webhooks(self.settings, self.clock)

    @cached_property
    def fleet(self) -> Fleet:
        return Fleet(self.settings, self.redis)

    # --- the API's own

    @cached_property
    def keys(self) -> ApiKeyCache:
        timer = self.adapters.key_timer or time.monotonic
        return ApiKeyCache(self.uow_factory.reading, self.settings.api_key_cache_seconds, timer)

    @cached_property
    def idempotency_locks(self) -> KeyLocks:
        return self.adapters.key_locks or RedisKeyLocks(
            self.redis, self.settings.redis_key(""), self.keyring
        )

    @cached_property
    def listener(self) -> ChangeListener | None:
        settings = self.settings
        if not self.adapters.listen:
            return None
        return ChangeListener(
            make_subscriber(settings.redis_url, sentinel_master=settings.redis_sentinel_master),
            changes_channel(settings.redis_key_prefix),
            max_waiters=settings.max_waiters,
        )

    @cached_property
    def waiting(self) -> Waiting:
        return Waiting(self.uow_factory.reading, self.verifications, self.listener)

    # --- a worker's own

    @cached_property
    def verify(self) -> VerifyProvider:
        if self.adapters.verify is not None:
            return self.adapters.verify
        # Only workers call Twilio: the API and the command line never load its SDK.
        from shared.verify.twilio import TwilioVerifyClient

        return TwilioVerifyClient(self.settings)

    @cached_property
    def code_jobs(self) -> CodeJobs:
        settings, verify = self.settings, self.verify
        line_types = self.adapters.line_types or RedisLineTypes(self.redis, settings)
        approved = partial(on_verification_approved, one_user_per_phone=settings.one_user_per_phone)
        return CodeJobs(
            uow_factory=self.uow_factory,
            verify=verify,
            stash=self.stash,
            gate=self.adapters.gate or RedisProviderGate(settings, self.redis),
            lockout=self.guards.lockout,
            settings=settings,
            clock=self.clock,
            tenants=TenantDirectory(self.uow_factory.reading, settings, verify.default_service),
            numbers=NumberChecks(verify, line_types, self.keyring, settings, self.clock),
            keyring=self.keyring,
            on_approved=(approved,),
        )

    @cached_property
    def poster(self) -> Poster:
        settings = self.settings
        return self.adapters.poster or AiohttpPoster(
            settings.webhook_timeout_seconds,
            public_only=not settings.webhooks_may_reach_private_networks,
        )

    @cached_property
    def webhook_sender(self) -> WebhookSender:
        return WebhookSender(self.uow_factory, self.poster, self.settings, self.clock)

    @cached_property
    def sweeper(self) -> Sweeper:
        return Sweeper(self.uow_factory, self.settings, self.clock, self.stash)

    @cached_property
    def retention(self) -> Retention:
        return Retention(self.uow_factory, self.settings, self.clock)

    async def warm_up(self) -> None:
        """Open the pools before the first burst (the broker's only if jobs go to it)."""
        await warm_up(self.database, self.publisher)

    async def sweep(self) -> None:
        """A sweep, then what ops read of it: its time, the queues and the workers alive."""
        await self.sweeper.sweep()
        await self.fleet.stamp_sweep()
        await self.fleet.publish_metrics()

    async def close(self) -> None:
        """Close what this process opened (only what it built)."""
        built = self.__dict__
        if built.get("listener") is not None:
            await built["listener"].stop()
        if "verify" in built:
            await self.verify.close()
        if "poster" in built and isinstance(self.poster, AiohttpPoster):
            await self.poster.close()
        await self.redis.aclose()
        await self.database.dispose()
        if self.adapters.celery is None:  # its own, made here: the API's and the command line's
            self.celery.close()


def _job_queue(
    settings: Settings, celery: Celery, client: redis.Redis
) -> CeleryJobQueue | RedisJobQueue:
    """Jobs go straight to kombu's queues, unless Celery's task-sent events are wanted
    (TWOSTEP_TASK_EVENTS): only Celery's own client sends those."""
    if settings.task_events:
        return CeleryJobQueue(celery)
    return RedisJobQueue(celery, client, key_prefix=settings.redis_key_prefix)


def bootstrap(
    settings: Settings, adapters: Adapters | None = None, *, main: str = "twostep"
) -> Core:
    """Build a process's core. ``main`` names its Celery app (``twostep.api``, …)."""
    adapters = adapters or Adapters()
    keyring = keyring_of(settings)
    crypto.install(keyring)  # the columns that encrypt read their keys from here
    clock = adapters.clock or SystemClock()
    client = adapters.redis or make_redis(
        settings.redis_url, sentinel_master=settings.redis_sentinel_master, timeout=5
    )
    celery = adapters.celery or make_celery(settings, main=main)
    database = Database.connect(settings.database_url, pool_size=settings.database_pool_size)
    changes = adapters.changes or CountedChangeFeed(
        RedisChangeFeed(client, changes_channel(settings.redis_key_prefix))
    )
    publisher = None if adapters.jobs else _job_queue(settings, celery, client)
    uow_factory = UnitOfWorkFactory(
        database,
        AfterCommit(
            jobs=adapters.jobs or publisher,
            changes=changes,
            outbox=WebhookOutbox(settings, clock),
        ),
        clock=clock,
    )
    guards = adapters.guards or Guards(
        sends=RedisSendLimits(settings, client, keyring),
        lockout=RedisLockout(settings, client, keyring),
        recovery_code_sets=RedisActionLimit(
            settings, client, "recovery_code_sets", settings.limit_recovery_code_sets
        ),
    )
    stash = adapters.stash or RedisCodeStash(client, settings.redis_key(""), keyring)
    return Core(
        settings=settings,
        keyring=keyring,
        clock=clock,
        database=database,
        redis=client,
        celery=celery,
        uow_factory=uow_factory,
        guards=guards,
        stash=stash,
        publisher=publisher,
        adapters=adapters,
    )
