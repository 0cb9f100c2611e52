"""Helpers shared by the test suites: real servers on free ports, unique numbers, waiting."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import phonenumbers
import pytest
import uvicorn
from sqlalchemy import create_engine, make_url, text

from shared.kit.db.migrate import upgrade
from twostep.children import redis_server_argv, stop

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
# Area codes whose 2xx-9xx exchanges phonenumbers accepts; 555 exchanges are avoided because
# the sandbox refuses some +1415555… numbers on purpose.
_AREA_CODES = ("212", "312", "415", "617", "646", "206", "305", "713", "303", "404")


def random_phone() -> str:
    while True:
        number = (
            f"+1{random.choice(_AREA_CODES)}{random.randint(200, 999)}{random.randint(0, 9999):04d}"
        )
        if number[5:8] != "555" and phonenumbers.is_valid_number(phonenumbers.parse(number)):
            return number


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
) -> T:
    """Poll ``probe`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


class ThreadedServer:
    """An ASGI app served by uvicorn in a thread, on a free port of loopback."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> ThreadedServer:
        self._thread.start()
        wait_until(lambda: self._server.started, timeout=15, what=f"server on {self.url}")
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)


class RedisServer:
    """A throwaway redis-server of our own (tests may flush or kill it), or the embedded one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.embedded = shutil.which("redis-server") is None

    def start(self) -> RedisServer:
        if self.embedded:
            argv = [sys.executable, "-m", "twostep.embedded_redis", "--port", str(self.port)]
        else:
            argv = redis_server_argv(self.port)
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._accepts, timeout=15, what=f"redis on port {self.port}")
        return self

    def _accepts(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
            return True
        return False

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, 10)

    def restart(self) -> None:
        """A restart without persistence: every queue and counter is gone."""
        self.stop()
        self.start()


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the server of ``admin_url``, dropped afterwards."""
    url = make_url(admin_url).set(drivername="postgresql+psycopg")
    name = f"twostep_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def fresh_database(like: str, directory: Path) -> Iterator[str]:
    """An empty, migrated database of its own on the backend of ``like``: for a test whose rows
    must not meet the session database's (or whose changes those must not see)."""
    if make_url(like).get_backend_name() == "sqlite":
        url = f"sqlite:///{directory / f'own-{uuid.uuid4().hex[:8]}.db'}"
        upgrade(url)
        yield url
        return
    with postgres_database(like) as url:
        upgrade(url)
        yield url


class SandboxClient:
    """The sandbox's own routes, over HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def __enter__(self) -> SandboxClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.http.close()

    def messages(self, to: str | None = None) -> list[dict[str, Any]]:
        params = {"to": to} if to else {}
        response = self.http.get("/sandbox/messages", params=params)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def latest_code(self, to: str) -> str:
        messages = self.messages(to)
        assert messages, f"the sandbox sent nothing to {to}"
        return str(messages[0]["code"])

    def stats(self) -> dict[str, Any]:
        response = self.http.get("/sandbox/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def sends_to(self, to: str) -> int:
        return int(self.stats()["sends_by_to"].get(to, 0))

    def set_faults(self, **faults: Any) -> None:
        self.http.put("/sandbox/faults", json=faults).raise_for_status()

    def clear_faults(self) -> None:
        self.http.put("/sandbox/faults", json={}).raise_for_status()

    def cancel_verification(
        self, verification_sid: str, service_sid: str = "VA" + "0" * 32
    ) -> None:
        """Cancel a verification through Twilio's own API, as anything else holding the
        account's credentials could."""
        self.http.post(
            f"/v2/Services/{service_sid}/Verifications/{verification_sid}",
            data={"Status": "canceled"},
            auth=("AC" + "0" * 32, "sandbox"),
        ).raise_for_status()

    def clock_offset(self) -> float:
        """How far the sandbox's clock is ahead of this machine's (tests move it)."""
        response = self.http.get("/sandbox/clock")
        response.raise_for_status()
        return float(response.json()["offset_seconds"])

    def advance_clock(self, seconds: float) -> None:
        self.http.post("/sandbox/clock", json={"advance_seconds": seconds}).raise_for_status()

    def reset(self) -> None:
        self.http.post("/sandbox/reset").raise_for_status()


class ServiceProcess:
    """One of our own commands (``twostep api`` …, or another ``module``'s, such as the example
    login site's) as a child process, its output in a file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        env: dict[str, str],
        log_dir: Path,
        *,
        module: str = "twostep.cli",
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *argv],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 20) -> int:
        stop(self.process, timeout)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


# The suite's secrets: not the public development ones, so processes run as in production.
TEST_SECRETS = {
    "TWOSTEP_DATA_KEYS": "ZKwltQ0MtK3ZGDvJ1ZsXbZQJVnmm2tG2d9l2Z8C0Sa4=",
    "TWOSTEP_LOOKUP_KEY": "the-test-suite-lookup-key-0123456789abcdef",
}
# Production refuses to start without an allow-list; these are the countries the tests use.
TEST_COUNTRIES = "US,CA,GB,IE,FR,DE"


def base_env(**values: str) -> dict[str, str]:
    """The environment for a child process: ours, minus anything TWOSTEP_/TWILIO_ from outside,
    plus the suite's secrets and allow-list (production mode, the default)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWOSTEP_", "TWILIO_"))
    }
    env.update(TEST_SECRETS)
    env["TWOSTEP_ALLOWED_COUNTRIES"] = TEST_COUNTRIES
    # Many workers share this host in the suite: metrics ports only where a test asks for them.
    env["TWOSTEP_WORKER_METRICS_PORT"] = env["TWOSTEP_BEAT_METRICS_PORT"] = "0"
    env.update(values)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def wait_for_http(url: str, *, timeout: float = 30, process: ServiceProcess | None = None) -> None:
    def probe() -> bool:
        if process is not None and not process.alive():
            raise AssertionError(f"{process.name} exited early:\n{process.log()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=1).status_code == 200
        return False

    wait_until(probe, timeout=timeout, interval=0.1, what=url)


def create_key(database_url: str, name: str) -> str:
    """An API key in that database, made the way ``twostep keys create`` makes one."""
    from shared.kit.db.session import Database
    from shared.tenants.keys import create_api_key
    from shared.unit_of_work import UnitOfWorkFactory

    async def create() -> str:
        database = Database.connect(database_url, pool_size=1)
        try:
            async with UnitOfWorkFactory(database)() as uow:
                _key, plaintext = await create_api_key(uow, name)
            return plaintext
        finally:
            await database.dispose()

    return asyncio.run(create())


def documented_metrics() -> dict[str, set[str]]:
    """The metrics table of the operations guide (docs/operations.md): each metric and the
    processes it is said to come from."""
    guide = (REPO / "docs" / "operations.md").read_text()
    table = guide.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    documented: dict[str, set[str]] = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`twostep_"):
            continue
        sources = {source.strip() for source in cells[1].split(",")}
        for name in re.findall(r"`(twostep_[a-z_]+)", cells[0]):
            documented[name] = sources
    return documented


def early_in_a_totp_step(interval: int = 30, needed: float = 20.0, offset: float = 0.0) -> float:
    """A moment, on a clock ``offset`` seconds ahead of this machine's (the sandbox's), with
    at least ``needed`` seconds left in its TOTP step (sleeping into the next step if there are
    fewer): codes made at it for steps -1, 0 and +1 stay valid, at a skew of one step, for that
    long, however slow the machine."""
    left = interval - (time.time() + offset) % interval
    if left < needed:
        time.sleep(left + 0.2)
    return time.time() + offset


def node_packages(folder: Path, installed: str, what: str) -> Path:
    """``folder``'s npm packages (its package.json), installed once per machine; ``installed``
    is a path under node_modules that exists once they are. Without node and npm the test
    skips, but CI must run it: there it fails."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run {what}: node and npm are not installed")
        pytest.skip("node and npm are not installed")
    if not (folder / "node_modules" / installed).exists():
        command = "ci" if (folder / "package-lock.json").exists() else "install"
        subprocess.run(
            ["npm", command, "--no-audit", "--no-fund", "--no-save", "--silent"],
            cwd=folder,
            check=True,
            timeout=300,
        )
    return folder / "node_modules"
