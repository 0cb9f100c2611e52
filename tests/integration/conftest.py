from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker

from api.app import create_app
from shared.kit.jobs import ALL_QUEUES
from shared.kit.settings import Settings
from shared.verify.twilio import TwilioVerifyClient
from tests.support import SandboxClient, ThreadedServer
from workers.app import create_worker_app


@pytest.fixture
def worker(settings: Settings) -> Iterator[Celery]:
    """A real Celery worker (threads pool) in this process, on the real Redis broker."""
    app, holder = create_worker_app(settings)
    with start_worker(
        app,
        pool="threads",
        concurrency=settings.worker_concurrency,
        perform_ping_check=False,
        queues=list(ALL_QUEUES),
        loglevel="WARNING",
        shutdown_timeout=30,
    ):
        yield app
    holder.close()


@pytest.fixture
def api_url(settings: Settings) -> Iterator[str]:
    """The real API app, served by uvicorn on its own event loop in a thread."""
    server = ThreadedServer(create_app(settings)).start()
    yield server.url
    server.stop()


@pytest.fixture
async def api(api_url: str, api_key: str) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=40) as client:
        yield client


@pytest.fixture
async def twilio_adapter(sandbox: SandboxClient) -> AsyncIterator[TwilioVerifyClient]:
    """The Twilio adapter, pointed at the shared sandbox, with a short read timeout."""
    adapter = TwilioVerifyClient(
        Settings(twilio_base_url=sandbox.url, twilio_read_timeout_seconds=1.0, worker_concurrency=2)
    )
    yield adapter
    await adapter.close()
