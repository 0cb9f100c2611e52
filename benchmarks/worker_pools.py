"""How one Celery worker process can hold hundreds of Twilio calls in flight: the options weighed.

    .venv/bin/python -m benchmarks.worker_pools [--tasks 1000] [--concurrency 512]
        [--latency-ms 2000]   (gevent: pip install gevent first, or it is skipped)

Starts a redis-server and the sandbox answering in ``--latency-ms``, then for each option a
worker of ``benchmarks/pool_probe.py`` (late acks, prefetch 1, like twostep's), queues
``--tasks`` provider calls and measures how many the sandbox saw at once, how long they all took,
and what the worker spent (CPU per call, peak memory):

- ``threads, blocking``: threads pool, each call blocks its thread (a worker on a blocking HTTP
  client; in flight ≤ threads, and with the database it also needs a connection per thread);
- ``threads + one event loop``: threads pool, each thread hands its call to one event loop per
  process and waits (twostep's worker: the calls, the database and Redis all run on the loop);
- ``gevent``: green threads, the call blocking its greenlet.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from celery import Celery

from benchmarks.processes import (
    BenchError,
    ProcessMeter,
    Supervisor,
    Target,
    child_env,
    free_port,
    http_ok,
    say,
    twostep_argv,
    wait_for,
)


@dataclass(frozen=True)
class Option:
    name: str
    pool: str
    task: str


OPTIONS = (
    Option("threads, blocking", "threads", "probe.sync_call"),
    Option("threads + one event loop", "threads", "probe.loop_call"),
    Option("gevent", "gevent", "probe.sync_call"),
)


@dataclass(frozen=True)
class Figures:
    option: str
    peak_in_flight: int
    seconds: float
    calls_per_second: float
    cpu_ms_per_call: float
    peak_rss_mib: float


def measure(
    option: Option,
    supervisor: Supervisor,
    env: dict[str, str],
    tasks: int,
    concurrency: int,
    latency_ms: int,
) -> Figures:
    queue = f"probe-{option.pool}-{option.task}"
    worker = supervisor.start(
        f"worker-{len(supervisor.children)}",
        [sys.executable, "-m", "celery", "-A", "benchmarks.pool_probe", "worker",
         f"--pool={option.pool}", f"--concurrency={concurrency}", f"--queues={queue}",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=WARNING"],
        env,
    )  # fmt: skip
    sandbox = httpx.Client(base_url=env["POOL_PROBE_SANDBOX"], timeout=30)
    app = Celery("pool_probe_client", broker=env["POOL_PROBE_BROKER"], set_as_current=False)
    try:
        wait_for(lambda: bool(app.control.ping(timeout=0.5)), worker, option.name)
        sandbox.post("/sandbox/reset").raise_for_status()  # which forgets faults: set them again
        sandbox.put("/sandbox/faults", json={"latency_ms": latency_ms}).raise_for_status()
        with ProcessMeter([Target("worker", worker.pid)]) as meter:
            started = time.monotonic()
            for _ in range(tasks):
                app.send_task(option.task, queue=queue)
            wait_for(lambda: _finished(sandbox, tasks), worker, f"{tasks} calls", timeout=600)
            seconds = time.monotonic() - started
        usage = meter.usage()["worker"]
        stats = sandbox.get("/sandbox/stats").json()
    finally:
        app.close()
        sandbox.close()
        worker.stop()
    return Figures(
        option=option.name,
        peak_in_flight=int(stats["peak_in_flight"]),
        seconds=round(seconds, 1),
        calls_per_second=round(tasks / seconds, 1),
        cpu_ms_per_call=round(usage.cpu_seconds * 1000 / tasks, 2),
        peak_rss_mib=usage.peak_rss_mib,
    )


def _finished(sandbox: httpx.Client, tasks: int) -> bool:
    stats = sandbox.get("/sandbox/stats").json()
    return int(stats["requests_total"]) >= tasks and int(stats["in_flight"]) == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--latency-ms", type=int, default=2000)
    arguments = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is needed (apt install redis-server)")
    results = []
    with tempfile.TemporaryDirectory() as logs, Supervisor(Path(logs)) as supervisor:
        redis_port, sandbox_port = free_port(), free_port()
        supervisor.start(
            "redis", ["redis-server", "--port", str(redis_port), "--save", ""], child_env()
        )
        env = child_env(
            POOL_PROBE_BROKER=f"redis://127.0.0.1:{redis_port}/0",
            POOL_PROBE_SANDBOX=f"http://127.0.0.1:{sandbox_port}",
            TWOSTEP_LOG_LEVEL="WARNING",
        )
        sandbox = supervisor.start(
            "sandbox", twostep_argv("sandbox", "--port", str(sandbox_port)), env
        )
        wait_for(http_ok(f"{env['POOL_PROBE_SANDBOX']}/healthz"), sandbox, "sandbox")
        for option in OPTIONS:
            if option.pool == "gevent" and importlib.util.find_spec("gevent") is None:
                say("gevent is not installed: skipped (pip install gevent)")
                continue
            say(f"{option.name}: {arguments.tasks} calls, {arguments.concurrency} slots…")
            try:
                results.append(
                    measure(
                        option,
                        supervisor,
                        env,
                        arguments.tasks,
                        arguments.concurrency,
                        arguments.latency_ms,
                    )
                )
            except BenchError as exc:
                say(f"{option.name}: {exc}")
    print(f"{'option':<26} {'peak in flight':>14} {'seconds':>8} {'calls/s':>8} "
          f"{'CPU ms/call':>12} {'peak RSS MiB':>13}")  # fmt: skip
    for figures in results:
        print(f"{figures.option:<26} {figures.peak_in_flight:>14} {figures.seconds:>8} "
              f"{figures.calls_per_second:>8} {figures.cpu_ms_per_call:>12} "
              f"{figures.peak_rss_mib:>13}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
