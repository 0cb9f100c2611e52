"""Child processes: stopping one the way every launcher here does (``twostep dev``, the tests'
clusters, ``twostep bench``)."""

from __future__ import annotations

import contextlib
import signal
import subprocess


def stop(process: subprocess.Popen[bytes], timeout: float) -> bool:
    """SIGTERM (a warm shutdown), then SIGKILL if it has not exited within ``timeout``.
    Returns whether it stopped on its own."""
    if process.poll() is not None:
        return True
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return False
    return True


def redis_server_argv(port: int, *extra: str, program: str = "redis-server") -> list[str]:
    """A throwaway Redis on loopback: nothing kept on disk, nothing evicted (kombu's bindings
    must stay), quiet."""
    return [
        program, "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
        "--loglevel", "warning", *extra,
    ]  # fmt: skip
