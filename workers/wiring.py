"""Per-process singletons of a worker: engine, provider client, Redis. Built once, lazily, and
closed at shutdown; the tasks get them from here and nothing else builds them."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import redis
from celery import Celery
from sqlalchemy import Engine

from shared.codes import RedisCodeStash
from shared.db.session import UnitOfWorkFactory, make_engine, make_session_factory
from shared.jobs import CeleryJobQueue
from shared.limits import RedisLockout, RedisProviderThrottle
from shared.redis_client import make_redis
from shared.services.delivery import DeliveryDeps
from shared.settings import Settings
from shared.verify.twilio import TwilioVerifyClient


@dataclass
class WorkerContext:
    settings: Settings
    engine: Engine
    redis: redis.Redis
    uow_factory: UnitOfWorkFactory
    delivery: DeliveryDeps

    @classmethod
    def build(cls, settings: Settings, app: Celery) -> WorkerContext:
        # Every worker thread may hold a connection while it writes an outcome.
        engine = make_engine(settings.database_url, pool_size=settings.worker_concurrency + 2)
        uow_factory = UnitOfWorkFactory(make_session_factory(engine), CeleryJobQueue(app))
        client = make_redis(settings.redis_url, timeout=5)
        delivery = DeliveryDeps(
            uow_factory=uow_factory,
            verify=TwilioVerifyClient(settings),
            stash=RedisCodeStash(client, settings.redis_key("")),
            settings=settings,
            throttle=RedisProviderThrottle(settings, client),
            lockout=RedisLockout(settings, client),
        )
        return cls(settings, engine, client, uow_factory, delivery)

    def close(self) -> None:
        self.delivery.verify.close()
        self.redis.close()
        self.engine.dispose()


class ContextHolder:
    def __init__(self, settings: Settings, app: Celery) -> None:
        self._settings = settings
        self._app = app
        self._context: WorkerContext | None = None
        self._lock = threading.Lock()

    def get(self) -> WorkerContext:
        if self._context is None:
            with self._lock:
                if self._context is None:
                    self._context = WorkerContext.build(self._settings, self._app)
        return self._context

    def close(self) -> None:
        with self._lock:
            if self._context is not None:
                self._context.close()
                self._context = None
