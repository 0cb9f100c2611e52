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
from typing import TypeVar

from anyio.from_thread import BlockingPortal, start_blocking_portal
from celery import Celery

from shared.bootstrap import Adapters, Core, bootstrap
from shared.kit.settings import Settings
from shared.kit.tracing import traced

T = TypeVar("T")


class WorkerContext:
    """The worker's event loop thread and the core on it."""

    def __init__(self, settings: Settings, app: Celery, node: str) -> None:
        self._portal_manager: AbstractContextManager[BlockingPortal] = start_blocking_portal(
            "asyncio", {"use_uvloop": True}
        )
        self._portal = self._portal_manager.__enter__()
        try:
            self.core = self._portal.call(_built, settings, app)
            self._portal.call(self.core.warm_up)
        except BaseException:
            self._portal_manager.__exit__(None, None, None)
            raise
        self._heartbeat = self._portal.start_task_soon(self.core.fleet.heartbeat_forever, node)

    def run(self, job: Callable[[Core], Awaitable[T]], request_id: str | None = None) -> T:
        """Run a job on the loop, from any thread, and wait for its answer; its log lines carry
        the id of the request that caused it."""
        return self._portal.call(_traced, job, self.core, request_id)

    def close(self) -> None:
        self._heartbeat.cancel()
        try:
            self._portal.call(self.core.close)
        finally:
            self._portal_manager.__exit__(None, None, None)


async def _built(settings: Settings, app: Celery) -> Core:
    """The worker's core, on the worker's event loop (its pools belong to that loop)."""
    return bootstrap(settings, Adapters(celery=app))


async def _traced(
    job: Callable[[Core], Awaitable[T]],
    core: Core,
    request_id: str | None,
) -> T:
    with traced(request_id):
        return await job(core)


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
