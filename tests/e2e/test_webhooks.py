"""Signed webhooks against the real processes: a receiver that is down for a while and then up
gets each event exactly once, signed; a receiver that hangs holds up no login (its deliveries
have a worker of their own, as in the compose file); the webhooks guide's verifier accepts the
deliveries and refuses them tampered with or replayed."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shared.kit.jobs import CHECK_QUEUE, SEND_QUEUE, SWEEP_QUEUE, WEBHOOK_QUEUE
from tests.e2e.conftest import System, running_system
from tests.support import REPO, ThreadedServer, free_port, fresh_database, random_phone, wait_until

RECEIVER_TIMEOUT_SECONDS = 5
FAST_RETRIES = {
    "TWOSTEP_WEBHOOK_PRIVATE_NETWORKS": "true",  # the receivers are on loopback
    "TWOSTEP_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
    "TWOSTEP_WEBHOOK_RETRY_MAX_SECONDS": "2",
    "TWOSTEP_WEBHOOK_TIMEOUT_SECONDS": str(RECEIVER_TIMEOUT_SECONDS),
    "TWOSTEP_SWEEP_INTERVAL_SECONDS": "1",
    "TWOSTEP_REQUEUE_AFTER_SECONDS": "2",
}


@dataclass
class Receiver:
    """A login server's webhook route: records what arrives; answers after ``delay`` seconds."""

    delay: float = 0.0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            await asyncio.sleep(self.delay)
            self.received.append((dict(request.headers), body))
            return Response(status_code=204)

        return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture
def webhook_system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    # A database of its own: the receivers it registers are gone after the test, and every
    # later test's events would otherwise queue deliveries to them.
    with (
        fresh_database(database_url, tmp_path) as own,
        running_system(own, redis_url, tmp_path, settings=FAST_RETRIES) as system,
    ):
        system.processes.pop("worker").stop()
        codes = ",".join((SEND_QUEUE, CHECK_QUEUE, SWEEP_QUEUE))
        system.start("worker-codes", "worker", "-Q", codes, "--name", "codes@%h")
        system.start("worker-webhooks", "worker", "-Q", WEBHOOK_QUEUE, "--name", "hooks@%h")
        system.start("beat", "beat")
        yield system


def login_with_a_wrong_code(http: httpx.Client, system: System) -> tuple[str, float]:
    """Returns the verification id and the seconds the login took."""
    started = time.monotonic()
    phone = random_phone()
    created = http.post("/v1/verifications", json={"to": phone, "user_id": uuid.uuid4().hex})
    path = f"/v1/verifications/{created.json()['id']}"
    assert http.get(path, params={"wait": 20}).json()["status"] == "pending"
    code = system.sandbox.latest_code(phone)
    wrong = "000000" if code != "000000" else "111111"
    assert http.post(f"{path}/checks", params={"wait": 20}, json={"code": wrong}).json()[
        "status"
    ] == ("rejected")
    answer = http.post(f"{path}/checks", params={"wait": 20}, json={"code": code})
    assert answer.json()["status"] == "approved", answer.text
    return created.json()["id"], time.monotonic() - started


def guide_verifier() -> dict[str, Any]:
    guide = (REPO / "docs" / "webhooks.md").read_text()
    block = re.search(r"```python\n(import hashlib.*?)```", guide, re.S)
    assert block is not None
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)  # noqa: S102 - the webhooks guide's own example
    return namespace


def test_a_receiver_down_for_a_while_gets_each_event_once_and_a_hanging_one_slows_nothing(
    webhook_system: System, report: Any
) -> None:
    system = webhook_system
    admin = {"Authorization": f"Bearer {system.api_key}"}
    down_port = free_port()
    # Longer than the time a receiver gets: every try times out.
    slow = Receiver(delay=RECEIVER_TIMEOUT_SECONDS + 3.0)
    slow_server = ThreadedServer(slow.app()).start()
    receiver = Receiver()
    with httpx.Client(base_url=system.api_url, headers=admin, timeout=40) as http:
        endpoints = [
            http.post("/v1/webhook-endpoints", json={"url": f"http://127.0.0.1:{port}/hook"})
            for port in (down_port, slow_server.port)
        ]
        assert [e.status_code for e in endpoints] == [201, 201], endpoints[0].text
        secret = endpoints[0].json()["secret"]
        assert secret not in http.get("/v1/webhook-endpoints").text
        logins = [login_with_a_wrong_code(http, system) for _ in range(3)]
        wanted = {"verification.pending", "check.rejected", "verification.approved"}
        expected = len(logins) * len(wanted)
        down, hanging = (endpoint.json()["id"] for endpoint in endpoints)
        # Every event's first try has found nobody listening before the receiver comes up.
        wait_until(
            lambda: sum(bool(d["last_error"]) for d in deliveries_to(http, down)) == expected,
            timeout=40,
            what=f"a first try of each of the {expected} deliveries",
        )
        up = ThreadedServer(receiver.app(), port=down_port).start()
        try:
            # A delivered row is never tried again (a claim needs a queued one): once all are
            # delivered, what the receiver counted is all it will ever get.
            wait_until(
                lambda: (
                    [d["status"] for d in deliveries_to(http, down)] == ["delivered"] * expected
                ),
                timeout=40,
                what=f"{expected} deliveries delivered",
            )
            deliveries = deliveries_to(http, down)
            slow_attempts = deliveries_to(http, hanging)
        finally:
            up.stop()
            slow_server.stop()
    per_event = Counter(headers["twostep-event-id"] for headers, _ in receiver.received)
    types = Counter(json.loads(body)["type"] for _, body in receiver.received)
    verifier = guide_verifier()
    verify = verifier["verify_twostep_signature"]
    for headers, body in receiver.received:
        assert verify(secret, headers["twostep-signature"], body)
        tampered = body.replace(b'"data":{', b'"data":{"status":"approved",', 1)
        assert tampered != body and not verify(secret, headers["twostep-signature"], tampered)
        assert not verify("whsec_someone-else", headers["twostep-signature"], body)
    headers, body = receiver.received[0]
    verifier["time"] = _Later(seconds=301)  # the same delivery, replayed five minutes later
    assert not verify(secret, headers["twostep-signature"], body)
    retried = [d for d in deliveries if d["attempts"] > 1]
    report(
        "webhooks to a receiver down for 2 s, and to one that hangs",
        events=len(per_event),
        by_type=dict(types),
        accepted_per_event=sorted(set(per_event.values())),
        deliveries_retried=len(retried),
        most_attempts=max(d["attempts"] for d in deliveries),
        login_seconds=[round(seconds, 2) for _, seconds in logins],
        hanging_receivers_tries=sum(d["attempts"] for d in slow_attempts),
    )
    assert set(per_event.values()) == {1}, "an event was accepted twice"
    assert set(types) == wanted and len(per_event) == expected
    assert all(d["status"] == "delivered" for d in deliveries) and retried
    # A login that waited on its three events' tries to the hanging receiver would take at least
    # three of its timeouts more than a login does, even on a machine busy with other work.
    waited = 3 * RECEIVER_TIMEOUT_SECONDS
    assert all(seconds < waited - 3 for _, seconds in logins), "a login waited on a webhook"
    assert slow_attempts and all(d["status"] == "queued" for d in slow_attempts)


def deliveries_to(http: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    page = http.get("/v1/webhook-deliveries", params={"endpoint_id": endpoint_id, "limit": 200})
    deliveries: list[dict[str, Any]] = page.json()["deliveries"]
    return deliveries


class _Later:
    """``time`` for the verifier, as it will be ``seconds`` from now."""

    def __init__(self, seconds: float) -> None:
        self._offset = seconds

    def time(self) -> float:
        return time.time() + self._offset


def test_the_user_hears_of_every_change_to_their_account(
    webhook_system: System, report: Any
) -> None:
    """ASVS 2.2.3 and 2.5.5: a factor added or removed, recovery codes made or used, a lock
    and its release each reach the login server, signed, so that it can tell the user."""
    system = webhook_system
    receiver = Receiver()
    server = ThreadedServer(receiver.app()).start()
    user, phone = f"user-{uuid.uuid4().hex[:6]}", random_phone()
    admin = {"Authorization": f"Bearer {system.api_key}"}
    try:
        with httpx.Client(base_url=system.api_url, headers=admin, timeout=40) as http:
            url = f"http://127.0.0.1:{server.port}/hook"
            account_events = [
                "factor.added",
                "factor.removed",
                "recovery_codes.generated",
                "recovery_code.used",
                "user.locked",
                "user.unlocked",
            ]
            endpoint = http.post(
                "/v1/webhook-endpoints", json={"url": url, "events": account_events}
            )
            assert endpoint.status_code == 201, endpoint.text
            factor_id = _enrol(http, system, user, phone)
            codes = http.post(f"/v1/users/{user}/recovery-codes").json()["codes"]
            redeem = http.post(f"/v1/users/{user}/recovery-codes/redeem", json={"code": codes[0]})
            assert redeem.json()["status"] == "approved"
            _lock_out(http, system, user, phone)
            released = http.post("/v1/lockouts/release", json={"user_id": user})
            assert released.status_code == 204
            assert http.delete(f"/v1/users/{user}/factors/{factor_id}").status_code == 204
            wait_until(
                lambda: len(receiver.received) >= len(account_events),
                timeout=30,
                what="six account events",
            )
    finally:
        server.stop()
    verify = guide_verifier()["verify_twostep_signature"]
    secret = endpoint.json()["secret"]
    events = [json.loads(body) for _, body in receiver.received]
    assert all(verify(secret, h["twostep-signature"], body) for h, body in receiver.received)
    assert sorted(event["type"] for event in events) == sorted(account_events)
    assert all(event["data"]["user_id"] == user for event in events)
    by_type = {event["type"]: event["data"] for event in events}
    assert by_type["factor.added"]["status"] == "verified"
    removed = by_type["factor.removed"]
    assert (removed["status"], removed["disabled_reason"]) == ("disabled", "removed")
    assert phone not in json.dumps(events), "numbers leave only masked"
    assert (
        by_type["recovery_codes.generated"]["count"],
        by_type["recovery_code.used"]["left"],
    ) == (
        10,
        9,
    )
    report("account events", received=[event["type"] for event in events])


def _enrol(http: httpx.Client, system: System, user: str, phone: str) -> str:
    enrolled = http.post(f"/v1/users/{user}/factors", json={"phone": phone}).json()
    path = f"/v1/verifications/{enrolled['verification']['id']}"
    assert http.get(path, params={"wait": 20}).json()["status"] == "pending"
    code = system.sandbox.latest_code(phone)
    approved = http.post(f"{path}/checks", params={"wait": 20}, json={"code": code})
    assert approved.json()["status"] == "approved", approved.text
    return str(enrolled["factor"]["id"])


def _lock_out(http: httpx.Client, system: System, user: str, phone: str) -> None:
    login = http.post(f"/v1/users/{user}/challenges").json()
    path = f"/v1/verifications/{login['id']}"
    assert http.get(path, params={"wait": 20}).json()["status"] == "pending"
    right = system.sandbox.latest_code(phone)
    wrong = "000000" if right != "000000" else "111111"
    for _ in range(5):
        http.post(f"{path}/checks", params={"wait": 20}, json={"code": wrong})
