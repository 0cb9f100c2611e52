"""A rolling restart mid-storm, as a deploy does it: two API processes, two workers and beat
serve a storm of logins through the Python client while each API and each worker is replaced in
turn — a new one started, then the old one told to stop (SIGTERM). The client knows the APIs'
addresses (its transport picks the next live one; a request refused at connect is retried by the
client, as are its keyed writes and reads). Every login completes, no number is texted twice,
and no request fails that the client did not retry by itself."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from twostep_client import AsyncTwostepClient

from tests.e2e.conftest import System, running_system
from tests.support import ServiceProcess, free_port, random_phone, wait_for_http, wait_until

CONCURRENT = 12
AT_LEAST = 60  # logins; the storm goes on until every process has been replaced, too


@dataclass
class Addresses(httpx.AsyncBaseTransport):
    """The client's list of API addresses: each request goes to the next one in turn."""

    urls: list[str]
    inner: httpx.AsyncHTTPTransport = field(default_factory=httpx.AsyncHTTPTransport)
    turn: int = 0
    requests: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = httpx.URL(self.urls[self.turn % len(self.urls)])
        self.turn += 1
        self.requests += 1
        request.url = request.url.copy_with(host=target.host, port=target.port)
        try:
            response = await self.inner.handle_async_request(request)
        except httpx.TransportError as exc:
            self.errors[type(exc).__name__] += 1
            raise
        self.statuses[response.status_code] += 1
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Deploy:
    """Replaces each API and worker in turn, in a thread beside the storm."""

    system: System
    addresses: Addresses
    apis: list[ServiceProcess]
    workers: list[ServiceProcess]
    stop_seconds: dict[str, float] = field(default_factory=dict)
    done: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            for number, old in enumerate(list(self.apis)):
                self._replace_api(old, number)
            for number, old in enumerate(list(self.workers)):
                name = f"new{number}@%h"
                new = self.system.start(f"worker-new-{number}", "worker", "--name", name)
                time.sleep(3)  # its consumer is up before the old one leaves
                self._stop(old, lambda: None)
                self.workers.append(new)
        finally:
            self.done.set()

    def _replace_api(self, old: ServiceProcess, number: int) -> None:
        """The first API leaves the list before it is told to stop, as a load balancer drains
        it; the second is told to stop first and leaves the list half a second later, as a
        cluster's endpoints catch up with a SIGTERM: requests meet a closed port meanwhile."""
        port = free_port()
        new = self.system.start(f"api-new-{number}", "api", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/readyz", process=new)
        self.addresses.urls.append(url)
        self.apis.append(new)
        old_url = next(u for u in self.addresses.urls if u.endswith(f":{_port_of(old)}"))
        if number == 0:
            self.addresses.urls.remove(old_url)
            time.sleep(1)  # requests in flight to it go on; new ones go elsewhere
            self._stop(old, lambda: None)
        else:

            def endpoints_catch_up() -> None:
                time.sleep(0.5)
                self.addresses.urls.remove(old_url)

            self._stop(old, endpoints_catch_up)

    def _stop(self, process: ServiceProcess, meanwhile: Callable[[], None]) -> None:
        started = time.monotonic()
        process.process.send_signal(signal.SIGTERM)
        meanwhile()
        process.process.wait(timeout=90)
        self.stop_seconds[process.name] = round(time.monotonic() - started, 2)


def _port_of(process: ServiceProcess) -> str:
    argv = process.process.args
    assert isinstance(argv, list)
    return str(argv[argv.index("--port") + 1])


@pytest.fixture
def system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    """A system whose key may send as fast as the storm asks."""
    settings = {"TWOSTEP_LIMIT_PER_API_KEY": "100000 per minute"}
    with running_system(database_url, redis_url, tmp_path, settings=settings) as running:
        yield running


def test_a_rolling_restart_mid_storm_loses_no_login(system: System) -> None:
    second_port = free_port()
    second = system.start("api-2", "api", "--port", str(second_port))
    system.start("worker-2", "worker", "--name", "two@%h")
    system.start("beat", "beat")
    wait_for_http(f"http://127.0.0.1:{second_port}/readyz", process=second)
    addresses = Addresses([system.api_url, f"http://127.0.0.1:{second_port}"])
    workers = [system.processes["worker"], system.processes["worker-2"]]
    deploy = Deploy(system, addresses, [system.processes["api"], second], workers)
    system.sandbox.set_faults(latency_ms=150, jitter_ms=50)

    outcomes: Counter[str] = Counter()

    async def storm() -> None:
        async with AsyncTwostepClient(
            "http://twostep.invalid", system.api_key, transport=addresses, max_retries=4
        ) as client:

            async def login() -> None:
                to = random_phone()
                sent = await client.start_verification(to, user_id=f"roll-{to[-7:]}", wait=30)
                if not sent.sent:
                    sent = await client.wait_for_verification(sent.id, timeout=30)
                code = await asyncio.to_thread(system.sandbox.latest_code, to)
                check = await client.check(sent.id, code, wait=20)
                outcomes["approved" if check.approved else check.status] += 1

            async def user() -> None:
                while not deploy.done.is_set() or sum(outcomes.values()) < AT_LEAST:
                    try:
                        await login()
                    except Exception as exc:  # every failure is counted, and fails the test
                        outcomes[type(exc).__name__] += 1

            await asyncio.gather(*(user() for _ in range(CONCURRENT)))

    replacing = threading.Thread(target=deploy.run)
    replacing.start()
    asyncio.run(storm())
    replacing.join()

    stats = system.sandbox.stats()
    print(  # noqa: T201 - the figures this test exists to show
        f"\nrolling restart: logins {dict(outcomes)}; requests {addresses.requests}, answers "
        f"{dict(addresses.statuses)}, transport errors retried by the client "
        f"{dict(addresses.errors)}; stopped in s {deploy.stop_seconds}; sends "
        f"{stats['sends_total']}, most to one number {stats['max_sends_to_one_destination']}"
    )
    assert set(outcomes) == {"approved"}, outcomes
    assert outcomes["approved"] >= AT_LEAST
    assert stats["max_sends_to_one_destination"] == 1
    assert stats["sends_total"] == outcomes["approved"]
    assert len(deploy.stop_seconds) == 4 and all(s < 60 for s in deploy.stop_seconds.values())
    assert not any(status >= 500 for status in addresses.statuses), addresses.statuses
    wait_until(lambda: all(p.alive() for p in (*deploy.apis[2:], *deploy.workers[2:])), timeout=5)
