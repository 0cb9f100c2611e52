"""The whole flow with real parts: API → Redis → a Celery worker → the SDK → the sandbox → SQL,
and back to a waiting login server through Redis pub/sub."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from celery import Celery
from prometheus_client import REGISTRY
from sqlalchemy import MetaData, select

from shared.kit.clock import SystemClock
from shared.kit.crypto import keyring_of
from shared.kit.db.session import AfterCommit
from shared.kit.jobs import SEND_CODE, SEND_QUEUE, CeleryJobQueue
from shared.kit.settings import Settings
from shared.operations.sweeper import Sweeper
from shared.tenants.keys import authenticate
from shared.unit_of_work import UnitOfWorkFactory
from shared.verifications.service import VerificationRequest, Verifications
from tests.fakes import FakeCodeStash, fake_guards
from tests.support import SandboxClient, random_phone, wait_until


async def check(api: httpx.AsyncClient, verification_id: str, code: str) -> dict[str, Any]:
    """Submit a code and wait for the decision in the same request."""
    response = await api.post(
        f"/v1/verifications/{verification_id}/checks", params={"wait": 20}, json={"code": code}
    )
    assert response.status_code == 200, response.text
    decided: dict[str, Any] = response.json()
    return decided


def skipped_sends() -> float:
    """Send jobs this process's workers found taken or done (the worker runs in-process)."""
    return REGISTRY.get_sample_value("twostep_jobs_skipped_total", {"job": "send"}) or 0.0


async def sent(api: httpx.AsyncClient, verification_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/verifications/{verification_id}", params={"wait": 20})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "pending", body
    return body


async def test_a_code_is_sent_checked_and_approved(
    api: httpx.AsyncClient,
    worker: Celery,
    sandbox: SandboxClient,
    uow_factory: UnitOfWorkFactory,
) -> None:
    to = random_phone()
    created = await api.post("/v1/verifications", json={"to": to})
    assert created.status_code == 202 and created.json()["status"] == "queued"
    verification_id = created.json()["id"]
    path = f"/v1/verifications/{verification_id}"

    pending = await sent(api, verification_id)
    assert pending["send_attempts"] == 1 and pending["expires_at"]
    code = sandbox.latest_code(to)
    # Random, so that no column can hold it by coincidence (the sandbox's service is VA000…).
    wrong = next(c for c in (f"{secrets.randbelow(10**6):06d}" for _ in range(9)) if c != code)

    assert (await check(api, verification_id, wrong))["status"] == "rejected"
    assert (await api.get(path)).json()["status"] == "pending"
    approved = await check(api, verification_id, code)
    assert approved["status"] == "approved" and approved["completed_at"]
    final = (await api.get(path)).json()
    assert (final["status"], final["check_attempts"]) == ("approved", 2)

    again = await api.post(f"{path}/checks", json={"code": code})
    assert again.status_code == 409 and again.json()["code"] == "verification_not_pending"
    assert sandbox.sends_to(to) == 1
    await assert_no_column_holds(uow_factory, [code, wrong, to[2:]], only_in={"destination": to})


async def test_a_waiter_is_woken_by_the_workers_commit_not_by_its_timeout(
    api: httpx.AsyncClient, worker: Celery, sandbox: SandboxClient
) -> None:
    sandbox.set_faults(latency_ms=300)
    created = (await api.post("/v1/verifications", json={"to": random_phone()})).json()
    started = time.monotonic()
    await sent(api, created["id"])
    took = time.monotonic() - started
    assert 0.3 <= took < 10, f"answered after {took:.2f}s: woken by the timeout, not the commit"


async def test_a_create_that_waits_answers_once_the_code_is_sent(
    api: httpx.AsyncClient, worker: Celery, sandbox: SandboxClient
) -> None:
    sandbox.set_faults(latency_ms=300)
    to = random_phone()
    started = time.monotonic()
    created = await api.post("/v1/verifications", params={"wait": 20}, json={"to": to})
    took = time.monotonic() - started
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["status"] == "pending" and body["send_attempts"] == 1
    assert created.headers["Location"] == f"/v1/verifications/{body['id']}"
    assert 0.3 <= took < 10, f"answered after {took:.2f}s: woken by the timeout, not the commit"
    assert sandbox.sends_to(to) == 1


async def test_a_create_whose_wait_runs_out_answers_202_as_it_is(api: httpx.AsyncClient) -> None:
    # No worker: nothing sends the code.
    started = time.monotonic()
    created = await api.post("/v1/verifications", params={"wait": 1}, json={"to": random_phone()})
    took = time.monotonic() - started
    assert created.status_code == 202 and created.json()["status"] == "queued"
    assert 0.9 <= took < 5


async def test_a_wait_that_nothing_ends_answers_at_its_timeout_with_the_current_state(
    api: httpx.AsyncClient,
) -> None:
    created = (await api.post("/v1/verifications", json={"to": random_phone()})).json()
    started = time.monotonic()
    response = await api.get(f"/v1/verifications/{created['id']}", params={"wait": 1})
    took = time.monotonic() - started
    assert response.status_code == 200 and response.json()["status"] == "queued"
    assert 0.9 <= took < 5
    too_long = await api.get(f"/v1/verifications/{created['id']}", params={"wait": 31})
    assert too_long.status_code == 422


async def test_a_job_delivered_three_times_sends_one_sms(
    api: httpx.AsyncClient, worker: Celery, sandbox: SandboxClient
) -> None:
    to = random_phone()
    skipped_before = skipped_sends()
    verification_id = (await api.post("/v1/verifications", json={"to": to})).json()["id"]
    for _ in range(3):
        worker.send_task(SEND_CODE, args=[verification_id], queue=SEND_QUEUE)
    await sent(api, verification_id)
    # Of the four deliveries of the job, three find it taken or done: once all three have,
    # there is nothing left that could send.
    await asyncio.to_thread(
        wait_until,
        lambda: skipped_sends() - skipped_before == 3,
        timeout=30,
        what="the three duplicates to skip",
    )
    assert sandbox.stats()["in_flight"] == 0
    assert sandbox.sends_to(to) == 1


async def test_a_lost_job_is_sent_by_the_sweeper(
    api: httpx.AsyncClient,
    worker: Celery,
    sandbox: SandboxClient,
    uow_factory: UnitOfWorkFactory,
    settings: Settings,
) -> None:
    to = random_phone()
    verifications = Verifications(
        settings, fake_guards(), FakeCodeStash(), SystemClock(), keyring_of(settings)
    )
    # Commit a row the way the API does, but drop its job on the floor.
    async with uow_factory() as uow:
        key = await authenticate(uow, api.headers["Authorization"])
        lost = await verifications.request(uow, key, VerificationRequest(to=to))
    assert (await api.get(f"/v1/verifications/{lost.id}")).json()["status"] == "queued"

    publishing = UnitOfWorkFactory(uow_factory.database, AfterCommit(CeleryJobQueue(worker)))
    sweeper = Sweeper(publishing, settings, SystemClock(), FakeCodeStash())
    await sweeper.sweep(now=SystemClock().now() + settings.requeue_after + timedelta(seconds=1))
    async with uow_factory() as uow:
        republished = await uow.verifications.get(lost.id)
        assert republished is not None and republished.enqueue_count == 2
    await sent(api, str(lost.id))
    assert sandbox.sends_to(to) == 1


async def assert_no_column_holds(
    uow_factory: UnitOfWorkFactory, secrets: list[str], only_in: dict[str, str]
) -> None:
    """No column of any table holds a code; the number sits only in its own column."""
    async with uow_factory.reading() as uow:
        connection = await uow.session.connection()
        metadata = MetaData()
        await connection.run_sync(lambda sync: metadata.reflect(bind=sync))
        for table in metadata.sorted_tables:
            for row in await connection.execute(select(table)):
                for column, value in row._mapping.items():
                    text = str(value)
                    for secret in secrets:
                        if _holds(value, secret) and only_in.get(str(column)) != text:
                            raise AssertionError(f"{table.name}.{column} holds {secret!r}")


def _holds(value: object, secret: str) -> bool:
    """Whether a column's value holds ``secret``: text, bytes and JSON anywhere in them, a number
    as the whole of it. A time or a UUID cannot hold one, and their digits match a six-digit code
    by chance: a microseconds field one time in a million, among the suite's thousands of rows."""
    if isinstance(value, datetime | date | uuid.UUID | bool):
        return False
    if isinstance(value, int | float | Decimal):
        return str(value) == secret
    return secret in str(value)
