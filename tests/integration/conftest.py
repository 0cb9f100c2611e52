from __future__ import annotations

from collections.abc import Iterator

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from fastapi.testclient import TestClient

from api.app import create_app
from shared.jobs import ALL_QUEUES
from shared.settings import Settings
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
def api(settings: Settings, api_key: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {api_key}"
        yield client
