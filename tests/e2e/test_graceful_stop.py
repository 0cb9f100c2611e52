"""An API process told to stop (SIGTERM, as Kubernetes and compose stop it) answers every
long-poll it holds at once, with the row as it is, and exits well within a grace period that
fits the longest wait — instead of holding each until its ``wait`` runs out."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time

import httpx

from tests.e2e.conftest import System
from tests.support import ServiceProcess, free_port, random_phone, wait_for_http, wait_until

HELD = 500


def test_an_api_told_to_stop_answers_its_held_long_polls_at_once(system: System) -> None:
    system.processes["worker"].stop()  # nothing is sent: the verification stays queued
    port = free_port()
    api = system.start("api-stopping", "api", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/readyz", process=api)
    auth = {"Authorization": f"Bearer {system.api_key}"}
    created = httpx.post(
        f"{url}/v1/verifications", json={"to": random_phone()}, headers=auth, timeout=10
    )
    assert created.status_code == 202, created.text
    path = f"{url}/v1/verifications/{created.json()['id']}"

    def held() -> int:
        metrics = httpx.get(f"{url}/metrics", headers=auth, timeout=5).text
        found = re.search(r"^twostep_long_polls_waiting (\S+)$", metrics, re.MULTILINE)
        return int(float(found[1])) if found else 0

    async def storm() -> tuple[list[tuple[int, str, float]], float, float]:
        limits = httpx.Limits(max_connections=HELD + 10)
        async with httpx.AsyncClient(headers=auth, timeout=60, limits=limits) as client:

            async def one() -> tuple[int, str, float]:
                answer = await client.get(path, params={"wait": "30"})
                return answer.status_code, answer.json()["status"], time.monotonic()

            polls = [asyncio.create_task(one()) for _ in range(HELD)]
            await asyncio.to_thread(
                lambda: wait_until(lambda: held() >= HELD, timeout=60, what=f"{HELD} held")
            )
            stopped_at = time.monotonic()
            api.process.send_signal(signal.SIGTERM)
            answers = await asyncio.gather(*polls)
            exit_seconds = await asyncio.to_thread(_exited, api, stopped_at)
            return answers, stopped_at, exit_seconds

    answers, stopped_at, exit_seconds = asyncio.run(storm())
    slowest = max(at for _, _, at in answers) - stopped_at
    print(  # noqa: T201 - the figure this test exists to show
        f"\n{HELD} long-polls held; answered within {slowest:.2f} s of SIGTERM; "
        f"the process exited {exit_seconds:.2f} s after it"
    )
    assert [(status, state) for status, state, _ in answers] == [(200, "queued")] * HELD
    # Each would otherwise have waited its 30 s: they were answered when the stop came.
    assert slowest < 15
    assert exit_seconds < 20 and api.process.returncode is not None


def _exited(api: ServiceProcess, since: float) -> float:
    api.process.wait(timeout=40)
    return time.monotonic() - since


def test_every_process_of_a_multiprocess_api_logs_as_configured(system: System) -> None:
    """`twostep api --workers 2`, as compose runs it: each serving process imports the app
    afresh, and logs JSON as TWOSTEP_LOG_FORMAT says, like the one that started them."""
    port = free_port()
    api = system.start("api-multi", "api", "--port", str(port), "--workers", "2")
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/readyz", process=api)
    auth = {"Authorization": f"Bearer {system.api_key}"}
    for _ in range(8):  # both processes take some
        sent = httpx.post(f"{url}/v1/verifications", json={"to": random_phone()}, headers=auth)
        assert sent.status_code == 202, sent.text
    requested = wait_until(
        lambda: [line for line in api.log().splitlines() if "verification.requested" in line],
        timeout=10,
        what="the requests logged",
    )
    assert len(requested) == 8
    assert {json.loads(line)["process"] for line in requested} == {"api"}  # every one JSON
