"""Per-process singletons of a worker, built once when it is ready (or by its first job), and
closed at shutdown.

A worker process runs one asyncio event loop (uvloop) in a thread of its own, and on it the
database pool, Redis, the provider client and the services. Celery's threads run the tasks; each
task hands its job to the loop (``asyncio.run_coroutine_threadsafe``) and waits for the answer.
So a job waiting on Twilio costs one parked thread and a coroutine — no database connection, no
CPU — and hundreds are in flight at once with a pool of a few connections. The hand-over is
asyncio's own: an anyio portal's task group and cancel scope per job cost a tenth of a job's CPU.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from celery import Celery

from shared.bootstrap import Adapters, Core, bootstrap
from shared.kit.settings import Settings
from shared.kit.tracing import traced

T = TypeVar("T")


class LoopThread:
    """An event loop running in a thread of its own, for coroutines handed over from others."""

    def __init__(self) -> None:
        self.loop = _new_event_loop()
        self._thread = threading.Thread(target=self._run, name="twostep-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its answer (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def start(self, coroutine: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self.loop.close()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # uvicorn[standard]'s, where it builds (not on Windows)
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class WorkerContext:
    """The worker's event loop thread and the core on it."""

    def __init__(self, settings: Settings, app: Celery, node: str) -> None:
        self._loop = LoopThread()
        try:
            self.core = self._loop.call(_built(settings, app))
            self._loop.call(self.core.warm_up())
        except BaseException:
            self._loop.stop()
            raise
        self._heartbeat = self._loop.start(self.core.fleet.heartbeat_forever(node))

    def run(self, job: Callable[[Core], Awaitable[T]], request_id: str | None = None) -> T:
        """Run a job on the loop, from any thread, and wait for its answer; its log lines carry
        the id of the request that caused it."""
        return self._loop.call(_traced(job, self.core, request_id))

    def close(self) -> None:
        # The heartbeat's task is cancelled on the loop before the core's close starts there.
        self._heartbeat.cancel()
        try:
            self._loop.call(self.core.close())
        finally:
            self._loop.stop()


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
