"""How many Twilio-shaped requests per second the sandbox answers on one core.

    .venv/bin/python benchmarks/sandbox_throughput.py [--seconds 10] [--connections 200]
        [--latency-ms 0] [--clients 1000]

Starts ``twostep sandbox`` pinned to one core (where ``taskset`` exists), drives it from the other
with an asyncio HTTP client, and prints requests per second and latency percentiles for a mix of
creates (each to a new number, as a login storm would) and checks. ``--latency-ms 200 --clients
1000`` instead holds 1,000 connections open against 200 ms of injected latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx

REPO = Path(__file__).resolve().parent.parent
# The sandbox's built-in service and the development credentials it accepts (and only those).
SERVICE = "VA" + "0" * 32
AUTH = {"Authorization": aiohttp.encode_basic_auth("AC" + "0" * 32, "sandbox")}


def start_sandbox(port: int, latency_ms: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWOSTEP_", "TWILIO_"))}
    env["TWOSTEP_LOG_LEVEL"] = "WARNING"
    if latency_ms:
        env["TWOSTEP_SANDBOX_FAULTS"] = json.dumps(
            {"latency_ms": latency_ms, "jitter_ms": latency_ms // 4}
        )
    argv = [sys.executable, "-m", "twostep.cli", "sandbox", "--port", str(port)]
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        argv = ["taskset", "-c", "0", *argv]
    process = subprocess.Popen(argv, env=env, cwd=REPO)
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the sandbox did not start")


async def drive(url: str, seconds: float, connections: int) -> tuple[int, list[float], int]:
    deadline = time.monotonic() + seconds
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, headers=AUTH) as session:

        async def worker(index: int) -> None:
            nonlocal errors
            sequence = 0
            while time.monotonic() < deadline:
                sequence += 1
                to = f"+1415{index:03d}{sequence:04d}"[:12]
                started = time.monotonic()
                async with session.post(
                    f"{url}/v2/Services/{SERVICE}/Verifications", data={"To": to, "Channel": "sms"}
                ) as response:
                    await response.read()
                    errors += response.status != 201
                async with session.post(
                    f"{url}/v2/Services/{SERVICE}/VerificationCheck",
                    data={"To": to, "Code": "000000"},
                ) as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append((time.monotonic() - started) / 2)

        await asyncio.gather(*(worker(i) for i in range(connections)))
    return len(latencies) * 2, latencies, errors


async def hold_open(url: str, clients: int) -> tuple[float, list[float], int]:
    connector = aiohttp.TCPConnector(limit=clients)
    latencies: list[float] = []
    failures = 0
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60), headers=AUTH
    ) as session:

        async def one() -> None:
            nonlocal failures
            started = time.monotonic()
            async with session.post(
                f"{url}/v2/Services/{SERVICE}/Verifications",
                data={"To": f"+1212{random.randint(2000000, 9999999)}", "Channel": "sms"},
            ) as response:
                await response.read()
                failures += response.status != 201
            latencies.append(time.monotonic() - started)

        began = time.monotonic()
        await asyncio.gather(*(one() for _ in range(clients)))
        return time.monotonic() - began, latencies, failures


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--clients", type=int, default=0, help="one request each, all at once")
    parser.add_argument("--port", type=int, default=18765)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    process = start_sandbox(args.port, args.latency_ms)
    try:
        if args.clients:
            elapsed, latencies, failures = asyncio.run(hold_open(url, args.clients))
            print(
                f"{args.clients} concurrent creates with {args.latency_ms} ms latency: "
                f"all answered in {elapsed:.2f}s, failures {failures}, "
                f"p50 {percentile(latencies, 0.5):.0f} ms, p99 {percentile(latencies, 0.99):.0f} ms"
            )
        else:
            print(f"warming up, then {args.seconds:.0f}s with {args.connections} connections…")
            asyncio.run(drive(url, 1, args.connections))
            count, latencies, errors = asyncio.run(drive(url, args.seconds, args.connections))
            p50, p99 = percentile(latencies, 0.5), percentile(latencies, 0.99)
            print(
                f"{count / args.seconds:,.0f} requests/s (half creates, half checks) on one core; "
                f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
                f"mean {statistics.mean(latencies) * 1000:.1f} ms; non-2xx: {errors}"
            )
        stats = httpx.get(f"{url}/sandbox/stats").json()
        peak = stats["peak_requests_per_second"]
        print(f"sandbox: {stats['requests_total']} requests, peak {peak} in one second")
    finally:
        process.terminate()
        process.wait()


if __name__ == "__main__":
    main()
