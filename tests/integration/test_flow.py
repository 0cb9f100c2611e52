"""The whole flow with real parts: API → Redis → a Celery worker → the SDK → the sandbox → SQL."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, select

from shared.db.session import UnitOfWorkFactory
from shared.jobs import SEND_CODE, SEND_QUEUE
from tests.fakes import fake_guards
from tests.support import SandboxClient, random_phone, wait_until


def wait_for_status(
    api: TestClient, path: str, wanted: set[str], timeout: float = 10
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body: dict[str, Any] = api.get(path).json()
        return body if body["status"] in wanted else None

    return wait_until(probe, timeout=timeout, what=f"{path} to be {wanted}")


def check(api: TestClient, verification_id: str, code: str) -> dict[str, Any]:
    response = api.post(f"/v1/verifications/{verification_id}/checks", json={"code": code})
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["status"] == "queued"
    return wait_for_status(
        api,
        f"/v1/verifications/{verification_id}/checks/{created['id']}",
        {"approved", "rejected", "expired", "failed", "max_attempts_reached"},
    )


def test_a_code_is_sent_checked_and_approved(
    api: TestClient, worker: Celery, sandbox: SandboxClient, uow_factory: UnitOfWorkFactory
) -> None:
    to = random_phone()
    created = api.post("/v1/verifications", json={"to": to})
    assert created.status_code == 202 and created.json()["status"] == "queued"
    verification_id = created.json()["id"]
    path = f"/v1/verifications/{verification_id}"

    pending = wait_for_status(api, path, {"pending"}, timeout=5)
    assert pending["send_attempts"] == 1 and pending["expires_at"]
    code = sandbox.latest_code(to)
    wrong = "000000" if code != "000000" else "111111"

    assert check(api, verification_id, wrong)["status"] == "rejected"
    assert api.get(path).json()["status"] == "pending"
    approved = check(api, verification_id, code)
    assert approved["status"] == "approved" and approved["completed_at"]
    final = api.get(path).json()
    assert (final["status"], final["check_attempts"]) == ("approved", 2)

    again = api.post(f"{path}/checks", json={"code": code})
    assert again.status_code == 409 and again.json()["code"] == "verification_not_pending"
    assert sandbox.sends_to(to) == 1
    assert_no_column_holds(uow_factory, [code, wrong, to[2:]], only_in={"to_e164": to})


def test_a_job_delivered_three_times_sends_one_sms(
    api: TestClient, worker: Celery, sandbox: SandboxClient
) -> None:
    to = random_phone()
    verification_id = api.post("/v1/verifications", json={"to": to}).json()["id"]
    for _ in range(3):
        worker.send_task(SEND_CODE, args=[verification_id], queue=SEND_QUEUE)
    wait_for_status(api, f"/v1/verifications/{verification_id}", {"pending"})
    # Give the duplicates time to run; they must find nothing to claim.
    wait_until(lambda: sandbox.stats()["in_flight"] == 0, timeout=5)
    time.sleep(1.0)
    assert sandbox.sends_to(to) == 1


def test_a_lost_job_is_sent_by_the_sweeper(
    api: TestClient,
    worker: Celery,
    sandbox: SandboxClient,
    uow_factory: UnitOfWorkFactory,
    settings,
) -> None:
    from datetime import timedelta

    from shared.clock import utcnow
    from shared.services import verifications
    from shared.services.keys import authenticate
    from shared.services.sweeper import sweep
    from shared.services.verifications import VerificationRequest
    from workers.wiring import WorkerContext

    to = random_phone()
    # Commit a row the way the API does, but drop its job on the floor.
    with uow_factory() as uow:
        key = authenticate(uow, api.headers["Authorization"])
        lost = verifications.request_verification(
            uow, settings, fake_guards(), key, VerificationRequest(to=to)
        )
        uow.commit()
    assert api.get(f"/v1/verifications/{lost.id}").json()["status"] == "queued"

    context = WorkerContext.build(settings, worker)
    try:
        sweep(
            context.uow_factory,
            settings,
            now=utcnow() + settings.requeue_after + timedelta(seconds=1),
        )
    finally:
        context.close()
    with uow_factory() as uow:
        republished = uow.verifications.get(lost.id)
        assert republished is not None and republished.enqueue_count == 2
    wait_for_status(api, f"/v1/verifications/{lost.id}", {"pending"})
    assert sandbox.sends_to(to) == 1


def assert_no_column_holds(
    uow_factory: UnitOfWorkFactory, secrets: list[str], only_in: dict[str, str]
) -> None:
    """No column of any table holds a code; the number sits only in its own column."""
    with uow_factory() as uow:
        connection = uow.session.connection()
        metadata = MetaData()
        metadata.reflect(bind=connection)
        for table in metadata.sorted_tables:
            for row in connection.execute(select(table)):
                for column, value in row._mapping.items():
                    text = str(value)
                    for secret in secrets:
                        if secret in text and only_in.get(str(column)) != text:
                            raise AssertionError(f"{table.name}.{column} holds {secret!r}")
