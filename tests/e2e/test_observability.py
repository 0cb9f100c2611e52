"""What ops see, against the real processes: Flower with its basic auth, the metrics of every
process (every metric docs/operations.md documents, where it says), and one request id followed from
the API's log to the worker's Twilio call and its outcome."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import httpx

from tests.e2e.conftest import System
from tests.support import (
    ServiceProcess,
    documented_metrics,
    free_port,
    random_phone,
    wait_for_http,
    wait_until,
)

FLOWER_AUTH = ("ops", "a-long-flower-password")


def login(system: System, request_id: str | None = None) -> tuple[str, str, str]:
    """A whole login over the API; returns (phone, code, verification id)."""
    headers = {"Authorization": f"Bearer {system.api_key}"}
    if request_id:
        headers["X-Request-Id"] = request_id
    phone = random_phone()
    with httpx.Client(base_url=system.api_url, headers=headers, timeout=40) as http:
        created = http.post(
            "/v1/verifications", json={"to": phone, "user_id": f"ops-{uuid.uuid4().hex[:8]}"}
        )
        assert created.status_code == 202, created.text
        assert created.headers["x-request-id"] == (request_id or created.headers["x-request-id"])
        path = f"/v1/verifications/{created.json()['id']}"
        assert http.get(path, params={"wait": 20}).json()["status"] == "pending"
        code = system.sandbox.latest_code(phone)
        check = http.post(f"{path}/checks", params={"wait": 20}, json={"code": code})
        assert check.json()["status"] == "approved", check.text
    return phone, code, created.json()["id"]


def test_flower_shows_the_workers_and_the_jobs_but_no_number_and_no_code(
    system: System, report: Any
) -> None:
    port = free_port()
    env = {**system.env, "TWOSTEP_FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH)}
    flower = ServiceProcess("flower", ["flower", "--port", str(port)], env, system.log_dir)
    system.processes["flower"] = flower
    url = f"http://127.0.0.1:{port}"
    wait_for_http(f"{url}/healthcheck", process=flower)
    with httpx.Client(base_url=url, auth=FLOWER_AUTH, timeout=20) as ops:

        def workers_seen() -> dict[str, Any] | None:
            answer: dict[str, Any] = ops.get("/api/workers", params={"refresh": "true"}).json()
            return answer or None

        def jobs_done() -> dict[str, Any] | None:
            seen = {t["name"]: t for t in ops.get("/api/tasks").json().values() if t.get("name")}
            wanted = {"twostep.send_code", "twostep.check_code"}
            done = wanted <= set(seen) and all(seen[n]["state"] == "SUCCESS" for n in wanted)
            return seen if done else None

        workers = wait_until(workers_seen, timeout=30, what="Flower to see the worker")
        # Flower turns the workers' task events on every few seconds: log in until it has
        # seen one whole login's jobs.
        secrets: list[tuple[str, str]] = []

        def a_login_seen() -> dict[str, Any] | None:
            phone, code, _ = login(system)
            secrets.append((phone, code))
            return jobs_done()

        tasks = wait_until(a_login_seen, timeout=45, interval=1, what="a login's jobs in Flower")
        anonymous = httpx.get(f"{url}/api/workers", timeout=10).status_code
        unauthenticated = {
            path: httpx.get(f"{url}{path}", timeout=10).status_code
            for path in ("/healthcheck", "/metrics")
        }
    shown = json.dumps(tasks)
    for name in ("twostep.send_code", "twostep.check_code"):
        task = tasks[name]
        assert task["runtime"] is not None and task["runtime"] >= 0, task
        assert task["retries"] == 0, task
        assert re.fullmatch(r"\['[0-9a-f-]{36}'\]", str(task["args"])), task["args"]
        assert task["kwargs"] in ("{}", {}), task["kwargs"]
    for phone, code in secrets:
        for secret in (phone, phone[1:], phone[-10:]):
            assert secret not in shown
        assert not re.search(rf"(?<!\d){code}(?!\d)", shown), "a code reached Flower"
    assert anonymous == 401
    report(
        "Flower",
        workers=sorted(workers),
        tasks={name: tasks[name]["state"] for name in sorted(tasks)},
        runtimes_ms={name: round(tasks[name]["runtime"] * 1000, 1) for name in sorted(tasks)},
        without_auth={"/api/workers": anonymous, **unauthenticated},
    )


def scraped_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        if line.startswith("twostep_"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            names.add(re.sub(r"_(bucket|count|sum|created|total)$", "", name))
    return names


def test_every_process_serves_every_metric_the_readme_documents(
    system: System, report: Any
) -> None:
    system.processes.pop("worker").stop()  # this test's worker takes every job, sweeps too
    worker_port, beat_port = free_port(), free_port()
    env = {**system.env, "TWOSTEP_SWEEP_INTERVAL_SECONDS": "1"}
    worker = ServiceProcess(
        "worker-metrics",
        ["worker", "--metrics-port", str(worker_port), "--name", f"metrics-{uuid.uuid4().hex[:6]}"],
        env,
        system.log_dir,
    )
    beat = ServiceProcess("beat", ["beat", "--metrics-port", str(beat_port)], env, system.log_dir)
    system.processes.update({"worker-metrics": worker, "beat": beat})
    wait_for_http(f"http://127.0.0.1:{worker_port}/metrics", process=worker)
    wait_for_http(f"http://127.0.0.1:{beat_port}/metrics", process=beat)
    for _ in range(4):  # a few logins, so that both workers take some jobs
        login(system)
    admin = {"Authorization": f"Bearer {system.api_key}"}

    def scrape() -> dict[str, set[str]]:
        return {
            "api": scraped_names(httpx.get(f"{system.api_url}/metrics", headers=admin).text),
            "worker": scraped_names(httpx.get(f"http://127.0.0.1:{worker_port}/metrics").text),
            "beat": scraped_names(httpx.get(f"http://127.0.0.1:{beat_port}/metrics").text),
        }

    documented = documented_metrics()
    assert len(documented) >= 20, documented

    def missing() -> list[str]:
        scraped = scrape()
        return [
            f"{name} from {source}"
            for name, sources in documented.items()
            for source in sources
            if name.removesuffix("_total") not in scraped[source]
        ]

    # The sweep's queue gauges and beat's counter appear once a sweep has run there.
    deadline = time.monotonic() + 20
    while (absent := missing()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert absent == [], f"documented but not served: {absent}"
    report(
        "metrics of every process",
        documented=len(documented),
        found_in={process: len(names) for process, names in scrape().items()},
    )


def test_one_request_id_from_the_api_to_the_provider_call_and_its_outcome(
    system: System, report: Any
) -> None:
    request_id = f"trace-{uuid.uuid4().hex}"
    login(system, request_id)

    def lines_of(process: str) -> list[dict[str, Any]]:
        """The process's log lines that carry the id (not those that merely mention it, as
        Celery's debug line of a job's headers does)."""
        found = []
        for line in system.processes[process].log().splitlines():
            if request_id in line and line.startswith("{"):
                parsed = json.loads(line)
                if parsed.get("request_id") == request_id:
                    found.append(parsed)
        return found

    def traced() -> dict[str, list[str]] | None:
        events = {process: [e["event"] for e in lines_of(process)] for process in ("api", "worker")}
        return events if "check.answered" in events["worker"] else None

    events = wait_until(traced, timeout=10, what="the request's lines in the worker's log")
    worker_lines = lines_of("worker")
    calls = [line for line in worker_lines if line["event"] == "provider.call"]
    assert calls and calls[0]["operation"] == "create" and calls[0]["outcome"] == "ok"
    assert {"provider.call", "send.pending", "check.answered"} <= set(events["worker"])
    assert events["api"], "the API logged nothing for the request"
    report("one request id", api=events["api"], worker=events["worker"])
