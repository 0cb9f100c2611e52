"""Per-process wiring of the API and the dependencies its routes declare."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from shared.codes import CodeStash, RedisCodeStash
from shared.db.models import ApiKey
from shared.db.session import UnitOfWork, UnitOfWorkFactory, make_engine, make_session_factory
from shared.errors import NotFound
from shared.jobs import CeleryJobQueue, make_celery
from shared.limits import Guards, RedisLockout, RedisSendLimits
from shared.redis_client import make_redis
from shared.services import keys
from shared.services.idempotency import KeyLocks, RedisKeyLocks
from shared.settings import Settings


@dataclass
class ApiContext:
    settings: Settings
    engine: Engine
    uow_factory: UnitOfWorkFactory
    redis: redis.Redis
    stash: CodeStash
    guards: Guards
    idempotency_locks: KeyLocks

    @classmethod
    def build(cls, settings: Settings) -> ApiContext:
        engine = make_engine(settings.database_url, pool_size=20)
        job_queue = CeleryJobQueue(make_celery(settings, main="twostep.api"))
        client = make_redis(settings.redis_url)
        return cls(
            settings=settings,
            engine=engine,
            uow_factory=UnitOfWorkFactory(make_session_factory(engine), job_queue),
            redis=client,
            stash=RedisCodeStash(client, settings.redis_key("")),
            guards=Guards(
                sends=RedisSendLimits(settings, client), lockout=RedisLockout(settings, client)
            ),
            idempotency_locks=RedisKeyLocks(client, settings.redis_key("")),
        )

    def close(self) -> None:
        self.redis.close()
        self.engine.dispose()


def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]


def get_uow(context: ContextDep) -> Iterator[UnitOfWork]:
    with context.uow_factory() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow)]


_bearer = HTTPBearer(auto_error=False, description="An API key from `twostep keys create NAME`")


def require_api_key(
    uow: UowDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    return keys.authenticate(uow, header)


ApiKeyDep = Annotated[ApiKey, Depends(require_api_key)]


def parse_id(raw: str, what: str) -> uuid.UUID:
    """Ids are UUIDs; anything else is simply an id that does not exist."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no {what} {raw[:64]!r}") from None
