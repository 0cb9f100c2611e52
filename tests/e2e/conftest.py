from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import httpx
import pytest

from tests.cluster import chaos_database, cluster, report  # noqa: F401 - fixtures
from tests.conftest import SESSION_PREFIX
from tests.support import SandboxClient, ServiceProcess, base_env, free_port, wait_for_http


@dataclass
class System:
    """twostep as ops would run it: one command per process, configured by environment."""

    env: dict[str, str]
    log_dir: Path
    api_url: str = ""
    sandbox_url: str = ""
    api_key: str = ""
    api_key_name: str = ""
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    @cached_property
    def sandbox(self) -> SandboxClient:
        return SandboxClient(self.sandbox_url)

    def start(self, name: str, *argv: str) -> ServiceProcess:
        process = ServiceProcess(name, list(argv), self.env, self.log_dir)
        self.processes[name] = process
        return process

    def run(self, *argv: str) -> str:
        """A one-shot command (migrate, keys …); returns its standard output."""
        result = self._command(argv)
        assert result.returncode == 0, f"twostep {' '.join(argv)} failed:\n{result.stderr}"
        return result.stdout

    def run_failing(self, *argv: str) -> str:
        """A one-shot command that must fail; returns what it said on standard error."""
        result = self._command(argv)
        assert result.returncode != 0, f"twostep {' '.join(argv)} succeeded:\n{result.stdout}"
        return result.stderr

    def _command(self, argv: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "twostep.cli", *argv],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        with (self.log_dir / "commands.log").open("a") as log:
            log.write(result.stdout + result.stderr)
        return result

    def logs(self) -> str:
        commands = self.log_dir / "commands.log"
        one_shots = commands.read_text() if commands.exists() else ""
        return one_shots + "\n".join(p.log() for p in self.processes.values())

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        if "sandbox" in self.__dict__:
            self.sandbox.http.close()


@contextlib.contextmanager
def running_system(
    database_url: str,
    redis_url: str,
    log_dir: Path,
    *,
    key_prefix: str = SESSION_PREFIX,
    settings: dict[str, str] | None = None,
) -> Iterator[System]:
    """Sandbox, worker and API as their own commands, on a migrated database with a key;
    ``settings``: more TWOSTEP_* variables for every process."""
    sandbox_port, api_port = free_port(), free_port()
    env = base_env(
        TWOSTEP_DATABASE_URL=database_url,
        TWOSTEP_REDIS_URL=redis_url,
        TWOSTEP_TWILIO_BASE_URL=f"http://127.0.0.1:{sandbox_port}",
        TWOSTEP_WORKER_CONCURRENCY="4",
        TWOSTEP_LOG_LEVEL="DEBUG",
        TWOSTEP_LOG_FORMAT="json",
        TWOSTEP_LIMIT_PER_COUNTRY="1000000 per day",
        TWOSTEP_REDIS_KEY_PREFIX=key_prefix,
        **{"TWOSTEP_RESEND_COOLDOWN_SECONDS": "1", **(settings or {})},
    )
    system = System(env=env, log_dir=log_dir)
    system.sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    system.api_url = f"http://127.0.0.1:{api_port}"
    try:
        assert "up to date" in system.run("migrate")
        system.api_key_name = f"e2e-{uuid.uuid4().hex[:8]}"
        system.api_key = system.run("keys", "create", system.api_key_name).splitlines()[-1]
        sandbox = system.start("sandbox", "sandbox", "--port", str(sandbox_port))
        system.start("worker", "worker")
        api = system.start("api", "api", "--port", str(api_port))
        wait_for_http(f"{system.sandbox_url}/healthz", process=sandbox)
        wait_for_http(f"{system.api_url}/readyz", process=api)
        yield system
    finally:
        system.stop()


@pytest.fixture
def system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    with running_system(database_url, redis_url, tmp_path) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client
