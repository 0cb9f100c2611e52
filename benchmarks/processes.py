"""Child processes of the benchmark: started on loopback with a log file each, waited for until
they serve, measured (CPU, memory) during a storm, and stopped whatever happens."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx
import psutil

from twostep.children import stop

REPO = Path(__file__).resolve().parent.parent
_STOP_TIMEOUT = 20.0
_MIB = 1024 * 1024


class BenchError(Exception):
    """Something the person running the benchmark has to fix; the message says what."""


_STARTED = time.monotonic()


def say(message: str) -> None:
    """Progress goes to stderr so that stdout carries only the table."""
    print(f"[{time.monotonic() - _STARTED:5.0f}s] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_env(**values: str) -> dict[str, str]:
    """Our environment minus any inherited TWOSTEP_*/TWILIO_*, so that only what the benchmark
    sets configures the system under test."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWOSTEP_", "TWILIO_"))
    }
    env.update(values)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def twostep_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "twostep.cli", *args]


class Child:
    """One long-running process, its output in ``<log_dir>/<name>.log``."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("ab")
        # A session of its own: Ctrl-C reaches only the benchmark, which then stops every child
        # in order instead of leaving them to die half-way through a write.
        self.process = subprocess.Popen(
            argv,
            env=env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, chars: int = 2000) -> str:
        return self.log_text()[-chars:]

    def stop(self) -> None:
        if not stop(self.process, _STOP_TIMEOUT):
            say(f"{self.name} did not stop in {_STOP_TIMEOUT:.0f}s; killed it")
        self._log.close()


class Supervisor:
    """Every child the benchmark starts; leaving the ``with`` block stops them all, newest first
    (API before workers before Redis), also on Ctrl-C and on errors."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.children: dict[str, Child] = {}

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Child:
        child = Child(name, argv, env, self.log_dir)
        self.children[name] = child
        return child

    def stop_all(self) -> None:
        for child in reversed(list(self.children.values())):
            # A second Ctrl-C must not leave the remaining children running.
            with contextlib.suppress(KeyboardInterrupt):
                child.stop()
        self.children.clear()


def run_to_end(name: str, argv: list[str], env: dict[str, str], log_dir: Path) -> str:
    """A one-shot command (migrate, keys create); returns its stdout, fails with its output."""
    try:
        done = subprocess.run(
            argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{name} did not finish in 120 s") from exc
    (log_dir / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise BenchError(f"{name} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return done.stdout


def wait_for(probe: Callable[[], bool], child: Child, what: str, timeout: float = 60) -> None:
    """Poll ``probe`` until true; fail early with the child's log if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise BenchError(f"{child.name} exited while starting:\n{child.log_tail()}")
        if probe():
            return
        time.sleep(0.1)
    raise BenchError(f"{child.name}: no {what} after {timeout:.0f}s:\n{child.log_tail()}")


def http_ok(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(url, timeout=1).status_code == 200
        return False

    return probe


def log_contains(child: Child, text: str) -> Callable[[], bool]:
    return lambda: text in child.log_text()


@dataclass(frozen=True)
class Target:
    """A process to measure; ``tree`` adds its descendants (uvicorn, Celery may fork). Without a
    pid: every process whose command line contains ``cmdline_contains``, looked for at each
    sample (PostgreSQL's backends of one database come and go with connections)."""

    name: str
    pid: int | None = None
    tree: bool = True
    cmdline_contains: str | None = None


@dataclass(frozen=True)
class Usage:
    cpu_seconds: float
    peak_rss_mib: float


class ProcessMeter:
    """CPU (user + system) and peak RSS of some processes over a stretch of time: samples every
    250 ms in a thread, so that short-lived children and the memory peak are seen."""

    def __init__(self, targets: list[Target], interval: float = 0.25) -> None:
        self._targets = targets
        self._interval = interval
        self._baseline: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._peak: dict[str, int] = {target.name: 0 for target in targets}
        self._pids: dict[str, set[int]] = {target.name: set() for target in targets}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-meter", daemon=True)

    def __enter__(self) -> ProcessMeter:
        self._sample(first=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample(first=False)

    def usage(self) -> dict[str, Usage]:
        """Per target; one never found (a PostgreSQL on another machine) is left out."""
        result = {}
        for target in self._targets:
            pids = self._pids[target.name]
            if not pids:
                continue
            cpu = sum(self._last.get(pid, 0.0) - self._baseline.get(pid, 0.0) for pid in pids)
            result[target.name] = Usage(round(cpu, 3), round(self._peak[target.name] / _MIB, 1))
        return result

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample(first=False)

    def _sample(self, *, first: bool) -> None:
        for target in self._targets:
            rss = 0
            for process in _processes(target):
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    # children_* holds children already reaped; live ones are counted themselves.
                    cpu = times.user + times.system + times.children_user + times.children_system
                    rss += _memory(process, shared_counted_elsewhere=target.pid is None)
                    self._pids[target.name].add(process.pid)
                    if first:
                        self._baseline[process.pid] = cpu
                    self._last[process.pid] = cpu
            self._peak[target.name] = max(self._peak[target.name], rss)


def _memory(process: psutil.Process, *, shared_counted_elsewhere: bool) -> int:
    """RSS; for a server's many backends (PostgreSQL) only their private memory, or the shared
    buffers every one of them maps would be counted once per backend."""
    if shared_counted_elsewhere:
        return int(process.memory_full_info().uss)
    return int(process.memory_info().rss)


def _processes(target: Target) -> list[psutil.Process]:
    if target.cmdline_contains is not None:
        needle = target.cmdline_contains
        return [
            process
            for process in psutil.process_iter(["cmdline"])
            if needle in " ".join(process.info["cmdline"] or ())
        ]
    try:
        root = psutil.Process(target.pid)
        return [root, *root.children(recursive=True)] if target.tree else [root]
    except psutil.Error:
        return []
