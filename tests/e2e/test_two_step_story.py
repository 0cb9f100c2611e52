"""The whole two-step story (docs/two-step.md), over HTTP, against the real processes: a typo'd
phone that cannot lock anyone out, enrolment, a login with a wrong code, a retry and a new code
by call, a user without 2SA, disabling, recovery codes — and the audit trail of every step."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

from tests.e2e.conftest import System
from tests.support import random_phone, wait_until


class Client:
    def __init__(self, system: System) -> None:
        self.http = httpx.Client(
            base_url=system.api_url,
            headers={"Authorization": f"Bearer {system.api_key}"},
            timeout=30,
        )
        self.sandbox = system.sandbox

    def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == status, (
            f"{method} {path}: {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def settled(self, verification_id: str, *states: str) -> dict[str, Any]:
        def probe() -> dict[str, Any] | None:
            body: dict[str, Any] = self.call("GET", f"/v1/verifications/{verification_id}", 200)
            return body if body["status"] in states else None

        return wait_until(probe, timeout=15, what=f"verification {states}")

    def check(self, verification_id: str, code: str) -> str:
        created = self.call(
            "POST", f"/v1/verifications/{verification_id}/checks", 202, json={"code": code}
        )
        path = f"/v1/verifications/{verification_id}/checks/{created['id']}"
        done = wait_until(
            lambda: (body := self.call("GET", path, 200))["status"] != "queued" and body,
            timeout=15,
            what="the check",
        )
        return str(done["status"])


def test_the_two_step_story(system: System) -> None:
    client = Client(system)
    alice = f"alice-{uuid.uuid4().hex[:8]}"
    factors_path = f"/v1/users/{alice}/factors"

    # 1. A typo: the number turns out to be a landline. Twilio Lookup says so before anything
    #    is sent (production checks line types), the enrolment fails, 2SA stays off, and the
    #    login server is not blocked: a challenge says there is no verified factor.
    typo = client.call("POST", factors_path, 202, json={"phone": "+14155550205"})
    assert typo["factor"]["status"] == "unverified" and typo["factor"]["phone"] == "+1415•••••05"
    failed = client.settled(typo["verification"]["id"], "failed")
    assert failed["error"]["code"] == "line_type_not_allowed"
    assert client.call("GET", factors_path, 200)["two_step_enabled"] is False
    no_factor = client.call("POST", f"/v1/users/{alice}/challenges", 409)
    assert no_factor["code"] == "no_verified_factor"

    # 2. The right number: a code arrives, the user types it, the phone is verified, 2SA is on.
    phone = random_phone()
    enrolment = client.call("POST", factors_path, 202, json={"phone": phone})
    assert enrolment["verification"]["purpose"] == "enrollment"
    client.settled(enrolment["verification"]["id"], "pending")
    assert (
        client.check(enrolment["verification"]["id"], client.sandbox.latest_code(phone))
        == "approved"
    )
    factors = client.call("GET", factors_path, 200)
    assert factors["two_step_enabled"] is True
    assert [f["status"] for f in factors["factors"]] == ["unverified", "verified"]

    # 3. A login: a wrong code is rejected, the user may try again, asks for the code by call
    #    (the same code), and the right one approves the login.
    login = client.call(
        "POST", f"/v1/users/{alice}/challenges", 202, json={"client_ip": "203.0.113.9"}
    )
    assert login["purpose"] == "login" and login["user_id"] == alice
    client.settled(login["id"], "pending")
    code = client.sandbox.latest_code(phone)
    wrong = "000000" if code != "000000" else "111111"
    assert client.check(login["id"], wrong) == "rejected"
    assert client.call("GET", f"/v1/verifications/{login['id']}", 200)["status"] == "pending"
    time.sleep(1.1)  # the re-send cooldown (1 s in these tests, 30 s by default)
    client.call("POST", f"/v1/verifications/{login['id']}/resend", 202, json={"channel": "call"})
    by_call = wait_until(
        lambda: (latest := client.sandbox.messages(phone)[0])["channel"] == "call" and latest,
        timeout=15,
        what="the code by call",
    )
    assert by_call["code"] == code
    assert client.check(login["id"], code) == "approved"
    assert client.call("GET", f"/v1/verifications/{login['id']}", 200)["status"] == "approved"

    # 4. A user who never enrolled has no 2SA: the login server lets them in on the password.
    bob = client.call("POST", f"/v1/users/bob-{uuid.uuid4().hex[:8]}/challenges", 409)
    assert bob["code"] == "no_verified_factor"

    # 5. Recovery codes: ten, shown once; one works once, not twice.
    codes = client.call("POST", f"/v1/users/{alice}/recovery-codes", 201)["codes"]
    assert len(codes) == 10
    redeem = f"/v1/users/{alice}/recovery-codes/redeem"
    assert client.call("POST", redeem, 200, json={"code": codes[0]}) == {"status": "approved"}
    assert client.call("POST", redeem, 200, json={"code": codes[0]}) == {"status": "rejected"}

    # 6. Disabling the phone turns 2SA off.
    verified = next(f for f in factors["factors"] if f["status"] == "verified")
    client.call("DELETE", f"{factors_path}/{verified['id']}", 204)
    assert client.call("GET", factors_path, 200)["two_step_enabled"] is False
    assert client.call("POST", f"/v1/users/{alice}/challenges", 409)["code"] == "no_verified_factor"

    # Every step left its events, oldest to newest; paging with a small page sees them all.
    events: list[dict[str, Any]] = []
    before = None
    while True:
        page = client.call(
            "GET",
            f"/v1/users/{alice}/events",
            200,
            params={"limit": 5, **({"before": before} if before else {})},
        )
        events += page["events"]
        before = page["next_before"]
        if before is None:
            break
    types = [event["type"] for event in reversed(events)]
    assert types == [
        "verification.requested", "factor.enrollment_started", "verification.failed",
        "verification.requested", "factor.enrollment_started", "verification.sent",
        "verification.approved", "factor.verified",
        "verification.requested", "challenge.requested", "verification.sent", "check.rejected",
        "verification.resend_requested", "verification.sent", "verification.approved",
        "recovery_codes.generated", "recovery_code.used", "recovery_code.rejected",
        "factor.disabled",
    ], types  # fmt: skip
    assert len({event["id"] for event in events}) == len(events)
    challenge_events = [e for e in events if e["type"] == "challenge.requested"]
    assert challenge_events[0]["client_ip"] == "203.0.113.9"
    assert all(event["api_key"] == system.api_key_name for event in events)
    flat = str(events)
    assert phone not in flat and code not in flat and codes[0] not in flat
    assert all(event["destination"] is None or "•" in event["destination"] for event in events)
