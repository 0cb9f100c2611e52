"""The client against twostep's real processes (sandbox, worker, API), and both of its faces:
``TwostepClient`` as it is, ``AsyncTwostepClient`` driven from the test's thread through an event
loop of its own, so that one story exercises both."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
from twostep_client import AsyncTwostepClient, TwostepClient

from tests.e2e.conftest import System, running_system

# Short enough for a story to wait it out, long enough to be hit by an immediate re-send.
RESEND_COOLDOWN_SECONDS = 2


@pytest.fixture(scope="module")
def client_system(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    settings = {"TWOSTEP_RESEND_COOLDOWN_SECONDS": str(RESEND_COOLDOWN_SECONDS)}
    log_dir: Path = tmp_path_factory.mktemp("client-system")
    with running_system(database_url, redis_url, log_dir, settings=settings) as system:
        yield system


class Blocking:
    """An ``AsyncTwostepClient`` whose methods block: each call runs on a loop in a thread."""

    def __init__(self, make: Callable[[], AsyncTwostepClient]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._client = self._run(self._made(make))

    @staticmethod
    async def _made(make: Callable[[], AsyncTwostepClient]) -> AsyncTwostepClient:
        return make()  # httpx's AsyncClient belongs to the loop it is made on

    def _run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=120)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)
        return lambda *args, **kwargs: self._run(method(*args, **kwargs))

    def close(self) -> None:
        self._run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(params=["sync", "async"])
def connect(request: pytest.FixtureRequest, client_system: System) -> Iterator[Callable[..., Any]]:
    """``connect(api_key=…)``: a client of the requested face on the running system."""
    made: list[Any] = []

    def make(api_key: str | None = None, **options: Any) -> Any:
        key = api_key or client_system.api_key
        if request.param == "sync":
            client: Any = TwostepClient(client_system.api_url, key, **options)
        else:
            client = Blocking(lambda: AsyncTwostepClient(client_system.api_url, key, **options))
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
