"""A whole twostep as real processes (API, workers, beat, sandbox) on a Redis of its own, for
tests that stop, kill, flush or overload parts of it."""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import redis as redis_py
from sqlalchemy import Engine, or_, select, text
from sqlalchemy.orm import Session

from shared.kit.db.migrate import migration_engine, upgrade
from shared.kit.jobs import ALL_QUEUES, make_celery
from shared.kit.settings import Settings
from shared.verifications.models import Verification
from tests.conftest import POSTGRES_URL
from tests.support import (
    RedisServer,
    SandboxClient,
    ServiceProcess,
    base_env,
    create_key,
    free_port,
    postgres_database,
    random_phone,
    wait_for_http,
    wait_until,
)

# Short timings so that leases, deadlines and sweeps play out in seconds, not minutes.
CHAOS_ENV = {
    "TWOSTEP_WORKER_CONCURRENCY": "16",
    "TWOSTEP_SWEEP_INTERVAL_SECONDS": "1",
    "TWOSTEP_REQUEUE_AFTER_SECONDS": "3",
    "TWOSTEP_CLAIM_LEASE_SECONDS": "6",
    "TWOSTEP_TWILIO_CONNECT_TIMEOUT_SECONDS": "1",
    "TWOSTEP_TWILIO_READ_TIMEOUT_SECONDS": "2",
    "TWOSTEP_RETRY_BACKOFF_BASE_SECONDS": "0.5",
    "TWOSTEP_RETRY_BACKOFF_MAX_SECONDS": "4",
    # Rows are tagged by user_id and hundreds go out at once: only the per-number limit stays.
    "TWOSTEP_LIMIT_PER_USER": "100000 per hour",
    "TWOSTEP_LIMIT_PER_API_KEY": "100000 per minute",
    "TWOSTEP_LIMIT_PER_COUNTRY": "1000000 per day",
    "TWOSTEP_PROVIDER_RATE": "1000",
    "TWOSTEP_PROVIDER_BURST": "100",
}
FINAL = {"approved", "failed", "expired", "canceled", "max_attempts_reached"}


def cluster_numbers(count: int) -> list[str]:
    unique: set[str] = set()
    while len(unique) < count:
        unique.add(random_phone())
    return sorted(unique)


@pytest.fixture
def chaos_database(tmp_path: Path) -> Iterator[str]:
    """PostgreSQL when the suite has one (closest to production), else SQLite."""
    if POSTGRES_URL:
        with postgres_database(POSTGRES_URL) as url:
            upgrade(url)
            yield url
        return
    url = f"sqlite:///{tmp_path / 'chaos.db'}"
    upgrade(url)
    yield url


@dataclass
class Cluster:
    database_url: str
    log_dir: Path
    redis: RedisServer
    env: dict[str, str]
    api_key: str = ""
    api_url: str = ""
    sandbox_url: str = ""
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    engine: Engine | None = None
    _workers: int = 0

    def scaled(self, count: int) -> int:
        """The embedded Redis moves ~10 jobs a second: scenarios shrink to stay in budget there.
        The documentation's figures come from a real redis-server."""
        return max(20, count // 10) if self.redis.embedded else count

    def start(self, name: str, *argv: str) -> ServiceProcess:
        process = ServiceProcess(name, list(argv), self.env, self.log_dir)
        self.processes[name] = process
        return process

    def start_sandbox(self, faults: dict[str, Any] | None = None) -> None:
        port = int(self.sandbox_url.rsplit(":", 1)[1])
        env = dict(self.env)
        if faults:
            env["TWOSTEP_SANDBOX_FAULTS"] = json.dumps(faults)
        process = ServiceProcess("sandbox", ["sandbox", "--port", str(port)], env, self.log_dir)
        self.processes["sandbox"] = process
        wait_for_http(f"{self.sandbox_url}/healthz", process=process)

    def start_api(self, name: str = "api", port: int | None = None) -> str:
        """Start an API process; returns its URL (the first one is ``api_url``)."""
        port = port or int(self.api_url.rsplit(":", 1)[1])
        process = self.start(name, "api", "--port", str(port))
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/readyz", process=process)
        return url

    def start_worker(self) -> ServiceProcess:
        self._workers += 1
        name = f"worker-{self._workers}"
        process = self.start(name, "worker", "--name", f"{name}@%h")
        wait_until(lambda: "ready." in process.log() or not process.alive(), timeout=30, what=name)
        assert process.alive(), process.log()[-2000:]
        return process

    def start_beat(self) -> None:
        self.start("beat", "beat")

    def sandbox(self) -> SandboxClient:
        return SandboxClient(self.sandbox_url)

    def create(
        self,
        numbers: list[str],
        tag: str,
        per_second: float | None = None,
        api_url: str | None = None,
    ) -> list[str]:
        """POST one verification per number (20 at a time, or paced); returns their ids."""
        headers = {"Authorization": f"Bearer {self.api_key}"}
        api_url = api_url or self.api_url
        started = time.monotonic()
        with httpx.Client(timeout=30, headers=headers) as client:

            def post(indexed: tuple[int, str]) -> str:
                index, to = indexed
                if per_second:
                    time.sleep(max(0.0, started + index / per_second - time.monotonic()))
                response = client.post(
                    f"{api_url}/v1/verifications", json={"to": to, "user_id": tag}
                )
                assert response.status_code == 202, response.text
                return str(response.json()["id"])

            with ThreadPoolExecutor(20) as pool:
                return list(pool.map(post, enumerate(numbers)))

    def statuses(self, tag: str) -> Counter[str]:
        """Verifications by status, of the user ``tag`` or of its users ``tag:…``."""
        assert self.engine is not None
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT status, count(*) FROM verifications"
                    " WHERE user_id = :tag OR user_id LIKE :users GROUP BY status"
                ),
                {"tag": tag, "users": f"{tag}:%"},
            )
            return Counter({str(status): int(count) for status, count in rows})

    def rows(self, tag: str) -> list[dict[str, Any]]:
        """The rows as the application sees them (typed, with aware datetimes)."""
        assert self.engine is not None
        with Session(self.engine) as session:
            found = session.scalars(
                select(Verification).where(
                    or_(Verification.user_id == tag, Verification.user_id.like(f"{tag}:%"))
                )
            )
            return [
                {column.key: getattr(row, column.key) for column in Verification.__table__.columns}
                for row in found
            ]

    def redis_client(self) -> redis_py.Redis:
        return redis_py.Redis.from_url(self.redis.url)

    def wait_settled(self, tag: str, total: int, *, timeout: float, settled: set[str]) -> float:
        """Wait until all ``total`` rows are in ``settled`` states; returns the seconds it took."""
        started = time.monotonic()
        wait_until(
            lambda: sum(n for s, n in self.statuses(tag).items() if s in settled) == total,
            timeout=timeout,
            interval=0.25,
            what=f"{total} verifications to be {settled} (now {dict(self.statuses(tag))})",
        )
        return time.monotonic() - started

    def wait_progress(self, tag: str, *, pending: int, timeout: float) -> Counter[str]:
        """Wait until at least ``pending`` rows are pending while others are still being sent
        (a worker mid-call); returns the statuses then."""

        def progressed() -> Counter[str] | None:
            statuses = self.statuses(tag)
            return statuses if statuses["pending"] >= pending and statuses["sending"] else None

        return wait_until(
            progressed, timeout=timeout, interval=0.1, what=f"{pending} pending, calls in flight"
        )

    def wait_quiet(self, *, timeout: float) -> None:
        """Wait until no job waits in a queue or runs, and the sandbox is answering nothing.

        A worker takes a job off its queue as it reserves it, so the queues say nothing of the
        jobs the workers hold: each worker is asked (Celery's remote control, as Flower asks)
        what it runs, holds reserved and holds for a later retry. With every row final none
        will be published again: what the sandbox has counted by then is all it will count."""
        client, sandbox = self.redis_client(), self.sandbox()
        prefix = self.env.get("TWOSTEP_REDIS_KEY_PREFIX", "")
        app = make_celery(
            Settings(redis_url=self.env["TWOSTEP_REDIS_URL"], redis_key_prefix=prefix),
            main="twostep.test",
        )

        def held_by_workers() -> int | None:
            inspector = app.control.inspect(timeout=1.0)
            alive = inspector.ping() or {}
            # A job moves from scheduled (a retry's countdown) to reserved to running: asked in
            # that order, a job moving meanwhile is seen at least once.
            answers = [inspector.scheduled(), inspector.reserved(), inspector.active()]
            if not alive or any(
                answer is None or answer.keys() != alive.keys() for answer in answers
            ):
                return None  # a worker that does not answer may be busy
            return sum(
                len(jobs)
                for answer in answers
                for jobs in cast(dict[str, list[Any]], answer).values()
            )

        quiet_looks = 0

        def quiet() -> bool:
            nonlocal quiet_looks
            waiting = sum(cast(int, client.llen(f"{prefix}{queue}")) for queue in ALL_QUEUES)
            calm = not waiting and not sandbox.stats()["in_flight"] and held_by_workers() == 0
            quiet_looks = quiet_looks + 1 if calm else 0
            return quiet_looks >= 2  # twice running: nothing was between two places at once

        try:
            wait_until(quiet, timeout=timeout, what="no job queued or running")
        finally:
            client.close()
            sandbox.http.close()
            app.close()

    def logs(self) -> str:
        return "\n".join(process.log() for process in self.processes.values())

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            if process.alive():
                process.stop()
        if self.engine is not None:
            self.engine.dispose()


@contextlib.contextmanager
def cluster_on(
    redis: RedisServer, database_url: str, log_dir: Path, **env_extra: str
) -> Iterator[Cluster]:
    """A cluster (nothing running yet) on this Redis, stopped and the Redis with it at the end."""
    env = base_env(TWOSTEP_DATABASE_URL=database_url, TWOSTEP_REDIS_URL=redis.url, **CHAOS_ENV)
    env.update(env_extra)
    cluster = Cluster(database_url=database_url, log_dir=log_dir, redis=redis, env=env)
    cluster.sandbox_url = f"http://127.0.0.1:{free_port()}"
    cluster.api_url = f"http://127.0.0.1:{free_port()}"
    env["TWOSTEP_TWILIO_BASE_URL"] = cluster.sandbox_url
    cluster.api_key = create_key(database_url, f"chaos-{uuid.uuid4().hex[:8]}")
    cluster.engine = migration_engine(database_url)
    try:
        yield cluster
    finally:
        cluster.stop()
        redis.stop()


@pytest.fixture
def cluster(chaos_database: str, tmp_path: Path) -> Iterator[Cluster]:
    """Nothing runs yet: each test starts the processes it needs, in the order it needs."""
    with cluster_on(RedisServer().start(), chaos_database, tmp_path) as running:
        yield running


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Any:
    """Print a scenario's figures even when pytest captures output."""

    def emit(title: str, **figures: object) -> None:
        with capsys.disabled():
            line = ", ".join(
                f"{name.replace('_', ' ')}: {value}" for name, value in figures.items()
            )
            print(f"\n[chaos] {title}: {line}", flush=True)  # noqa: T201
        figures_file = os.environ.get("TWOSTEP_CHAOS_FIGURES")
        if figures_file:
            with open(figures_file, "a") as out:
                out.write(json.dumps({"scenario": title, **figures}, default=str) + "\n")

    return emit
