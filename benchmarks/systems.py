"""Everything the storm runs against, started as an operator would start it: a throwaway
``redis-server``, ``twostep sandbox``, ``twostep migrate`` and ``keys create``, then the API,
workers and beat, and the inline baseline, all on loopback ports of their own."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import make_url

from benchmarks.passkeys import ORIGIN, RP_ID
from benchmarks.processes import (
    BenchError,
    Child,
    Supervisor,
    Target,
    child_env,
    free_port,
    http_ok,
    log_contains,
    run_to_end,
    say,
    twostep_argv,
    wait_for,
)
from shared.kit.crypto import generate_data_key
from twostep.children import redis_server_argv

# Limits far above the storm, so that the benchmark measures the system and not its policy.
# The provider rate is the fleet's Twilio budget; at its default (30/s) it would be the bottleneck.
TWOSTEP_TUNING = {
    "TWOSTEP_LIMIT_PER_API_KEY": "1000000 per minute",
    "TWOSTEP_LIMIT_PER_COUNTRY": "10000000 per day",
    "TWOSTEP_LIMIT_PER_USER": "1000000 per hour",
    "TWOSTEP_LIMIT_PER_CLIENT_IP": "1000000 per hour",
    "TWOSTEP_PROVIDER_RATE": "5000",
    "TWOSTEP_PROVIDER_BURST": "500",
    "TWOSTEP_PROVIDER_MAX_IN_FLIGHT": "5000",
    "TWOSTEP_TWILIO_READ_TIMEOUT_SECONDS": "5",
    "TWOSTEP_LIMIT_PER_API_KEY_DAILY": "100000000 per day",
    "TWOSTEP_LIMIT_GLOBAL_DAILY": "100000000 per day",
    # Production mode, as deployed: the storm's numbers are American.
    "TWOSTEP_ALLOWED_COUNTRIES": "US",
    # Logs as deployed (docs/operations.md): a JSON line each, not the console's colours.
    "TWOSTEP_LOG_FORMAT": "json",
    # Workers share the host: no metrics ports to collide on.
    "TWOSTEP_WORKER_METRICS_PORT": "0",
    "TWOSTEP_BEAT_METRICS_PORT": "0",
}
INLINE_TIMEOUT_SECONDS = TWOSTEP_TUNING["TWOSTEP_TWILIO_READ_TIMEOUT_SECONDS"]


@dataclass
class Running:
    """The URLs the storm needs and the processes to measure on each side."""

    sandbox_url: str
    api_url: str
    api_key: str
    inline_url: str
    pids: dict[str, int]
    workers: int
    postgres_database: str | None
    redis_url: str

    def twostep_targets(self) -> list[Target]:
        names = [*twostep_process_names(self.workers), "sandbox", "redis"]
        targets = [*(Target(name, self.pids[name]) for name in names), _loadgen()]
        if self.postgres_database:
            # A local server's backends for our database: its share of the two cores.
            targets.append(Target("postgres", cmdline_contains=self.postgres_database))
        return targets

    def inline_targets(self) -> list[Target]:
        return [*(Target(name, self.pids[name]) for name in ("inline", "sandbox")), _loadgen()]


def twostep_process_names(workers: int) -> list[str]:
    """twostep's own processes, whose CPU is summed into one figure."""
    return ["api", *(f"worker-{k}" for k in range(1, workers + 1)), "beat"]


def _loadgen() -> Target:
    # The benchmark itself shares the two cores with the system: its cost is shown too.
    return Target("loadgen", os.getpid(), tree=False)


def start_all(supervisor: Supervisor, database_url: str, workers: int, run_id: str) -> Running:
    """Start what does not depend on the database first, so that it boots while migrations run;
    then wait for each piece to answer."""
    if shutil.which("redis-server") is None:
        raise BenchError(
            "redis-server is not on PATH; install it (apt install redis-server, brew install "
            "redis): the embedded Redis is far too slow to benchmark twostep"
        )
    say("starting redis, the sandbox and the inline baseline…")
    redis_port, sandbox_port, api_port, inline_port = (free_port() for _ in range(4))
    redis = _start_redis(supervisor, redis_port)
    sandbox = supervisor.start(
        "sandbox", twostep_argv("sandbox", "--port", str(sandbox_port)), child_env()
    )
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    inline = _start_inline(supervisor, inline_port, sandbox_url)
    env = _twostep_env(database_url, f"redis://127.0.0.1:{redis_port}/0", sandbox_url)
    say("migrating the database and creating an API key…")
    api_key = _prepare_database(env, supervisor, f"bench-{run_id}")
    say(f"starting twostep: api, {workers} worker(s), beat…")
    api = supervisor.start("api", twostep_argv("api", "--port", str(api_port)), env)
    worker_children = [
        supervisor.start(
            f"worker-{k}", _behind_the_api(twostep_argv("worker", "--name", f"bench-{k}@%h")), env
        )
        for k in range(1, workers + 1)
    ]
    beat = supervisor.start("beat", _behind_the_api(twostep_argv("beat")), env)
    wait_for(_redis_pong(redis_port), redis, "PONG")
    wait_for(http_ok(f"{sandbox_url}/healthz"), sandbox, "GET /healthz 200")
    wait_for(http_ok(f"http://127.0.0.1:{inline_port}/healthz"), inline, "GET /healthz 200")
    wait_for(http_ok(f"http://127.0.0.1:{api_port}/readyz"), api, "GET /readyz 200")
    for worker in worker_children:
        wait_for(log_contains(worker, "ready."), worker, '"ready." in its log')
    wait_for(beat.alive, beat, "process")
    # The passkey scenarios' relying party: the tenant's, in twostep's database (the sandbox
    # forgets it at each reset: ``benchmarks.passkeys`` sets it there again).
    passkeys = ("tenants", "passkeys", "default", "--rp-id", RP_ID, "--origin", ORIGIN)
    run_to_end("tenants-passkeys", twostep_argv(*passkeys), env, supervisor.log_dir)
    say("everything is up")
    return Running(
        sandbox_url=sandbox_url,
        api_url=f"http://127.0.0.1:{api_port}",
        api_key=api_key,
        inline_url=f"http://127.0.0.1:{inline_port}",
        pids={name: child.pid for name, child in supervisor.children.items()},
        workers=workers,
        postgres_database=_postgres_database(database_url),
        redis_url=env["TWOSTEP_REDIS_URL"],
    )


def _twostep_env(database_url: str, redis_url: str, sandbox_url: str) -> dict[str, str]:
    return child_env(
        TWOSTEP_DATABASE_URL=database_url,
        TWOSTEP_REDIS_URL=redis_url,
        TWOSTEP_TWILIO_BASE_URL=sandbox_url,
        # Keys of this run's own: personal data is encrypted as in production.
        TWOSTEP_DATA_KEYS=generate_data_key(),
        TWOSTEP_LOOKUP_KEY=secrets.token_urlsafe(32),
        **TWOSTEP_TUNING,
    )


def _behind_the_api(argv: list[str]) -> list[str]:
    """Workers and beat at a lower CPU priority, as docs/operations.md advises on a host they share
    with the API: a login server's calls stay quick while jobs wait a few milliseconds more."""
    return ["nice", "-n", "10", *argv] if shutil.which("nice") else argv


def _postgres_database(database_url: str) -> str | None:
    url = make_url(database_url)
    return url.database if url.get_backend_name() == "postgresql" else None


def _start_redis(supervisor: Supervisor, port: int) -> Child:
    return supervisor.start("redis", redis_server_argv(port), child_env())


def _redis_pong(port: int) -> Callable[[], bool]:
    def probe() -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock,
        ):
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        return False

    return probe


def _start_inline(supervisor: Supervisor, port: int, sandbox_url: str) -> Child:
    argv = [
        sys.executable, "-m", "uvicorn", "benchmarks.inline_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    env = child_env(
        INLINE_TWILIO_BASE_URL=sandbox_url, INLINE_TWILIO_TIMEOUT_SECONDS=INLINE_TIMEOUT_SECONDS
    )
    return supervisor.start("inline", argv, env)


def _prepare_database(env: dict[str, str], supervisor: Supervisor, key_name: str) -> str:
    """``twostep migrate``, then ``twostep keys create``; returns the key (its last line)."""
    log_dir = supervisor.log_dir
    run_to_end("migrate", twostep_argv("migrate"), env, log_dir)
    output = run_to_end("keys-create", twostep_argv("keys", "create", key_name), env, log_dir)
    lines = output.strip().splitlines()
    if not lines:
        raise BenchError("twostep keys create printed no key")
    return lines[-1].strip()


class SandboxControl:
    """The sandbox's own routes: faults, reset, stats."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=30)

    def close(self) -> None:
        self._http.close()

    def prepare(self, faults: dict[str, Any]) -> None:
        """A clean slate for one side: reset forgets the faults too, so they are set after it."""
        self._http.post("/sandbox/reset").raise_for_status()
        self._http.put("/sandbox/faults", json=faults).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._http.get("/sandbox/stats")
        response.raise_for_status()
        stats: dict[str, Any] = response.json()
        return stats


def wait_quiet(health_url: str, label: str, timeout: float = 60) -> float:
    """Wait until ``health_url`` answers within 0.25 s three times running (or ``timeout``);
    returns the seconds waited."""
    started = time.monotonic()
    prompt = 0
    told = False
    while prompt < 3 and time.monotonic() - started < timeout:
        asked = time.monotonic()
        answered = False
        with contextlib.suppress(httpx.HTTPError):
            answered = httpx.get(health_url, timeout=1).status_code == 200
        prompt = prompt + 1 if answered and time.monotonic() - asked < 0.25 else 0
        if prompt < 3 and not told and time.monotonic() - started > 1:
            say(f"{label}: waiting for the API to work through its backlog…")
            told = True
        time.sleep(0.1)
    return round(time.monotonic() - started, 2)
