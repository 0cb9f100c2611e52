"""Per-process wiring of the API and the dependencies its routes declare."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

import redis.asyncio as redis
from celery import Celery
from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import NotFound
from shared.kit import crypto
from shared.kit.changes import ChangeListener, RedisChangeFeed, changes_channel
from shared.kit.clock import SystemClock
from shared.kit.db.session import AfterCommit, Database
from shared.kit.jobs import CeleryJobQueue, make_celery
from shared.kit.redis_client import make_redis, make_subscriber
from shared.kit.settings import Settings
from shared.kit.warm_up import warm_up
from shared.limits.lockout import RedisLockout
from shared.limits.ports import Guards
from shared.limits.sends import RedisActionLimit, RedisSendLimits
from shared.operations.status import Fleet
from shared.tenants.domain import Scope
from shared.tenants.idempotency import KeyLocks, RedisKeyLocks
from shared.tenants.keys import ApiKeyCache, require_scope
from shared.tenants.models import ApiKey
from shared.two_step.service import TwoStep
from shared.unit_of_work import UnitOfWork, UnitOfWorkFactory
from shared.verifications.codes import RedisCodeStash
from shared.verifications.notices import CountedChangeFeed
from shared.verifications.service import Verifications
from shared.verifications.waiting import MAX_WAIT_SECONDS, Waiting
from shared.webhooks.outbox import WebhookOutbox
from shared.webhooks.service import Webhooks


@dataclass
class ApiContext:
    """What one API process builds once: connections, and the services over them."""

    settings: Settings
    database: Database
    uow_factory: UnitOfWorkFactory
    redis: redis.Redis
    keys: ApiKeyCache
    verifications: Verifications
    two_step: TwoStep
    waiting: Waiting
    idempotency_locks: KeyLocks
    fleet: Fleet
    webhooks: Webhooks
    listener: ChangeListener | None = None
    celery: Celery | None = None

    @classmethod
    def build(cls, settings: Settings) -> ApiContext:
        keyring = settings.keyring()
        crypto.install(keyring)
        database = Database.connect(settings.database_url, pool_size=settings.database_pool_size)
        client = make_redis(settings.redis_url, sentinel_master=settings.redis_sentinel_master)
        channel = changes_channel(settings.redis_key_prefix)
        celery = make_celery(settings, main="twostep.api")
        clock = SystemClock()
        uow_factory = UnitOfWorkFactory(
            database,
            AfterCommit(
                jobs=CeleryJobQueue(celery),
                changes=CountedChangeFeed(RedisChangeFeed(client, channel)),
                outbox=WebhookOutbox(settings, clock),
            ),
        )
        verifications = Verifications(
            settings=settings,
            guards=Guards(
                sends=RedisSendLimits(settings, client, keyring),
                lockout=RedisLockout(settings, client, keyring),
                recovery_code_sets=RedisActionLimit(
                    settings, client, "recovery_code_sets", settings.limit_recovery_code_sets
                ),
            ),
            stash=RedisCodeStash(client, settings.redis_key(""), keyring),
            clock=clock,
            keyring=keyring,
        )
        listener = ChangeListener(
            make_subscriber(settings.redis_url, sentinel_master=settings.redis_sentinel_master),
            channel,
            max_waiters=settings.max_waiters,
        )
        return cls(
            settings=settings,
            database=database,
            uow_factory=uow_factory,
            redis=client,
            keys=ApiKeyCache(uow_factory.reading, settings.api_key_cache_seconds),
            verifications=verifications,
            two_step=TwoStep(verifications, keyring),
            waiting=Waiting(uow_factory.reading, verifications, listener),
            idempotency_locks=RedisKeyLocks(client, settings.redis_key(""), keyring),
            fleet=Fleet(settings, client),
            webhooks=Webhooks(settings, clock),
            listener=listener,
            celery=celery,
        )

    async def open(self) -> None:
        if self.listener is not None:
            self.listener.start()
        await warm_up(self.database, self.celery)

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.stop()
        await self.redis.aclose()
        await self.database.dispose()
        if self.celery is not None:
            self.celery.close()


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


async def get_uow(context: ContextDep) -> AsyncIterator[UnitOfWork]:
    """The route's unit of work: committed when the route returns, before the answer is sent."""
    async with context.uow_factory() as uow:
        yield uow


async def get_reading_uow(context: ContextDep) -> AsyncIterator[UnitOfWork]:
    async with context.uow_factory.reading() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]
ReadingUowDep = Annotated[UnitOfWork, Depends(get_reading_uow, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key from `twostep keys create NAME`")


async def require_api_key(
    context: ContextDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    return await context.keys.authenticate(header)


ApiKeyDep = Annotated[ApiKey, Depends(require_api_key)]


def _scoped(scope: Scope) -> object:
    def require(api_key: ApiKeyDep) -> ApiKey:
        return require_scope(api_key, scope)

    return Depends(require)


# A route takes the key it needs: a key without that scope is answered 403 insufficient_scope.
VerifyKey = Annotated[ApiKey, _scoped(Scope.VERIFY)]
UsersKey = Annotated[ApiKey, _scoped(Scope.USERS)]
UsersManageKey = Annotated[ApiKey, _scoped(Scope.USERS_MANAGE)]
AdminKey = Annotated[ApiKey, _scoped(Scope.ADMIN)]

WaitSeconds = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Hold the answer up to this many seconds until the result is decided "
        "(a verification sent or over, a check answered); then answer with what there is.",
    ),
]


# Ids are UUIDs, and the document says so; the route still takes any string, so that a malformed
# id is what it is to a caller, an id that does not exist (404), never a validation error.
ResourceId = Annotated[
    str,
    Path(
        description="A UUID, as the API gave it; any other string is not found (404)",
        json_schema_extra={"format": "uuid"},
    ),
]


def parse_id(raw: str, what: str) -> uuid.UUID:
    """Ids are UUIDs; anything else is simply an id that does not exist."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no {what} {raw[:64]!r}") from None
