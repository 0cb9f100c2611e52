"""``twostep dev``'s children: starting them in their own process groups, waiting until each
answers (or failing as soon as one exits), and stopping them in reverse order."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shared.kit.jobs import make_celery
from shared.kit.settings import Settings
from twostep.children import stop

STOP_TIMEOUT = 20.0
START_TIMEOUT = 60.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


@dataclass
class Launcher:
    env: dict[str, str]
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, *argv: str, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> Child:
        process = subprocess.Popen(
            [sys.executable, *argv],
            env=env or self.env,
            cwd=cwd,
            start_new_session=True,  # Ctrl-C goes to the launcher only; it stops children in order
        )
        child = Child(name, process)
        self.children.append(child)
        return child

    def start_command(self, name: str, argv: list[str]) -> Child:
        process = subprocess.Popen(argv, env=self.env, start_new_session=True)
        child = Child(name, process)
        self.children.append(child)
        return child

    def first_exited(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            if child.process.poll() is None:
                say(f"stopping {child.name}…")
                if not stop(child.process, STOP_TIMEOUT):
                    say(f"{child.name} did not stop in {STOP_TIMEOUT:.0f}s; killed it")


class StartFailed(Exception):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_near(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            port = free_port()
            say(f"port {preferred} is taken; using {port}")
            return port


def wait_tcp(port: int, name: str, launcher: Launcher) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5),
        ):
            return
        fail_if_exited(launcher)
        time.sleep(0.1)
    raise StartFailed(f"{name} did not open port {port} within {START_TIMEOUT:.0f}s")


def wait_http(url: str, name: str, launcher: Launcher, interrupted: Callable[[], bool]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if interrupted():
            return
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        fail_if_exited(launcher)
        time.sleep(0.2)
    raise StartFailed(f"{name} was not ready at {url} within {START_TIMEOUT:.0f}s")


def wait_worker(redis_url: str, launcher: Launcher, interrupted: Callable[[], bool]) -> None:
    app = make_celery(Settings(redis_url=redis_url), main="twostep.dev")
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while time.monotonic() < deadline and not interrupted():
            if app.control.ping(timeout=0.5):
                return
            fail_if_exited(launcher)
        if not interrupted():
            raise StartFailed(f"no worker answered within {START_TIMEOUT:.0f}s")
    finally:
        app.close()


def fail_if_exited(launcher: Launcher) -> None:
    exited = launcher.first_exited()
    if exited is not None:
        raise StartFailed(f"{exited.name} exited with code {exited.process.returncode}")


def say(text: str) -> None:
    sys.stderr.write(f"twostep dev: {text}\n")
    sys.stderr.flush()
