"""The second security review's table (tenants sharing Twilio, lockouts anyone could cause,
approvals by inference, nobody told, restricted authenticators), played against the real
processes as an attacker with an account at a login site, or a key of their own, would.

Each test prints what it measured (``[chaos]`` lines)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import System, running_system
from tests.e2e.test_security import Caller, new_key, wrong_code
from tests.support import random_phone, wait_until

# Twilio's five sends per number per ten minutes are the sandbox's too: a test that sends more
# to one number moves the sandbox's clock past them (twostep's own limits are raised instead).
_TWILIO_WINDOW_SECONDS = 601


@pytest.fixture
def roomy_system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    """One attacker sends many codes to one number: twostep's own limits step aside; the
    lockout's waits are a few milliseconds, so that 100 wrong codes take seconds."""
    settings = {
        "TWOSTEP_LIMIT_PER_DESTINATION": "1000 per 10 minutes",
        "TWOSTEP_LIMIT_PER_USER": "1000 per hour",
        "TWOSTEP_LIMIT_PER_CLIENT_IP": "1000 per hour",
        "TWOSTEP_LOCKOUT_WAIT_INCREMENT_SECONDS": "0.01",
        "TWOSTEP_LOCKOUT_MAX_WAIT_SECONDS": "0.01",
    }
    with running_system(database_url, redis_url, tmp_path, settings=settings) as system:
        yield system


def test_two_tenants_one_number_two_twilio_verifications(system: System, report: Any) -> None:
    """Row 1: B's verification to A's user's number gets another code, and B's wrong checks
    leave A's login approvable."""
    phone = random_phone()
    a = Caller(system, new_key(system, f"tenant-a-{uuid.uuid4().hex[:6]}"))
    b = Caller(system, new_key(system, f"tenant-b-{uuid.uuid4().hex[:6]}"))
    a_login = a.json("POST", "/v1/verifications", 202, json={"to": phone, "user_id": "42"})
    a.pending(a_login["id"])
    a_code = a.sandbox.latest_code(phone)
    b_probe = b.json("POST", "/v1/verifications", 202, json={"to": phone})
    b.pending(b_probe["id"])
    messages = a.sandbox.messages(phone)[:2]
    assert len({m["verification_sid"] for m in messages}) == 2, messages
    assert len({m["service_sid"] for m in messages}) == 2, "each tenant its own service"
    b_code = messages[0]["code"]
    for _ in range(5):
        b.check(b_probe["id"], wrong_code(b_code))
    sixth = b.check(b_probe["id"], wrong_code(b_code))
    assert sixth.status_code == 429
    approved = a.check(a_login["id"], a_code)
    assert approved.json()["status"] == "approved", approved.text
    report(
        "two tenants, one number",
        twilio_verifications=2,
        same_code=a_code == b_code,
        a_login=approved.json()["status"],
    )


def test_a_newer_verification_supersedes_the_earlier_one_to_the_number(
    system: System, report: Any
) -> None:
    """One twostep verification, one Twilio verification, within a tenant too."""
    phone = random_phone()
    caller = Caller(system, system.api_key)
    first = caller.json("POST", "/v1/verifications", 202, json={"to": phone})
    caller.pending(first["id"])
    second = caller.json("POST", "/v1/verifications", 202, json={"to": phone})
    caller.pending(second["id"])
    ended = caller.json("GET", f"/v1/verifications/{first['id']}", 200)
    assert (ended["status"], ended["error"]["code"]) == ("canceled", "superseded")
    refused = caller.check(first["id"], caller.sandbox.latest_code(phone))
    assert (refused.status_code, refused.json()["code"]) == (409, "verification_not_pending")
    sids = {m["verification_sid"] for m in caller.sandbox.messages(phone)}
    assert len(sids) == 2
    approved = caller.check(second["id"], caller.sandbox.latest_code(phone))
    assert approved.json()["status"] == "approved"
    report("a newer verification", earlier=ended["status"], twilio_verifications=len(sids))


def test_an_attackers_hundred_wrong_codes_leave_the_victims_login_working(
    roomy_system: System, report: Any
) -> None:
    """Row 2: a user of the login site enrols the victim's number on their own account and
    types 100 wrong codes; the victim's next login works at once. The attacker locks only
    themselves, for good."""
    system, phone = roomy_system, random_phone()
    site = Caller(system, system.api_key)
    victim, attacker = f"victim-{uuid.uuid4().hex[:6]}", f"attacker-{uuid.uuid4().hex[:6]}"
    site.enrol(victim, phone)
    wrong_codes, enrolments = 0, 0
    while wrong_codes < 100:
        system.sandbox.advance_clock(_TWILIO_WINDOW_SECONDS)
        enrolled = site.call("POST", f"/v1/users/{attacker}/factors", json={"phone": phone})
        if enrolled.status_code == 429:  # a lockout step of a few milliseconds: wait it out
            time.sleep(0.05)
            continue
        assert enrolled.status_code == 202, enrolled.text
        enrolments += 1
        verification_id = enrolled.json()["verification"]["id"]
        site.pending(verification_id)
        right = site.sandbox.latest_code(phone)
        for _ in range(5):
            answer = site.check(verification_id, wrong_code(right))
            if answer.status_code == 200:
                wrong_codes += 1
            if wrong_codes == 100 or answer.status_code != 200:
                break
    refused = site.call("POST", f"/v1/users/{attacker}/factors", json={"phone": random_phone()})
    assert (refused.status_code, refused.json().get("code")) == (429, "user_locked"), refused.text
    system.sandbox.advance_clock(_TWILIO_WINDOW_SECONDS)
    sends_before = system.sandbox.sends_to(phone)
    login = site.json("POST", f"/v1/users/{victim}/challenges", 202)
    site.pending(login["id"])
    approved = site.check(login["id"], site.sandbox.latest_code(phone))
    assert approved.json()["status"] == "approved", approved.text
    assert system.sandbox.sends_to(phone) == sends_before + 1
    report(
        "an attacker's account on the victim's number",
        wrong_codes=wrong_codes,
        enrolments=enrolments,
        attacker=refused.json()["code"],
        victim_login=approved.json()["status"],
    )


def test_a_locked_users_login_is_refused_before_any_sms(system: System, report: Any) -> None:
    caller = Caller(system, system.api_key)
    user, phone = f"user-{uuid.uuid4().hex[:6]}", random_phone()
    caller.enrol(user, phone)
    login = caller.json("POST", f"/v1/users/{user}/challenges", 202)
    caller.pending(login["id"])
    right = caller.sandbox.latest_code(phone)
    for _ in range(5):
        caller.check(login["id"], wrong_code(right))
    sends = caller.sandbox.sends_to(phone)
    refused = caller.call("POST", f"/v1/users/{user}/challenges")
    assert (refused.status_code, refused.json()["code"]) == (429, "user_locked")
    assert int(refused.headers["Retry-After"]) > 0
    assert caller.sandbox.sends_to(phone) == sends, "no SMS for a login that could not pass"
    report("a locked user's login", answer=refused.status_code, sms_sent=0)


def test_a_voip_number_cannot_enrol_and_a_swapped_sim_gets_no_login_code(
    system: System, report: Any
) -> None:
    """Row 7, in production's defaults: the line type is asked at enrolment, a SIM swap at
    every SMS or voice login (Twilio Lookup v2; the sandbox's documented numbers)."""
    caller = Caller(system, system.api_key)
    voip = "+14155550301"
    enrolled = caller.json("POST", "/v1/users/voip-user/factors", 202, json={"phone": voip})
    failed = caller.json(
        "GET", f"/v1/verifications/{enrolled['verification']['id']}", 200, params={"wait": 20}
    )
    assert (failed["status"], failed["error"]["code"]) == ("failed", "line_type_not_allowed")
    assert caller.sandbox.sends_to(voip) == 0
    swapped, user = "+14155550402", f"swapped-{uuid.uuid4().hex[:6]}"
    caller.enrol(user, swapped)
    sends = caller.sandbox.sends_to(swapped)
    login = caller.json("POST", f"/v1/users/{user}/challenges", 202)
    refused = caller.json("GET", f"/v1/verifications/{login['id']}", 200, params={"wait": 20})
    assert (refused["status"], refused["error"]["code"]) == ("failed", "sim_swap_detected")
    assert caller.sandbox.sends_to(swapped) == sends
    codes = caller.json("POST", f"/v1/users/{user}/recovery-codes", 201)["codes"]
    redeemed = caller.json(
        "POST", f"/v1/users/{user}/recovery-codes/redeem", 200, json={"code": codes[0]}
    )
    assert redeemed["status"] == "approved", "recovery codes stay open"
    report(
        "number checks",
        voip_enrolment=failed["error"]["code"],
        swapped_login=refused["error"]["code"],
        recovery_code=redeemed["status"],
    )


@pytest.fixture
def impatient_system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    """A worker that gives Twilio one second to answer: a hung answer is a lost one."""
    settings = {
        "TWOSTEP_TWILIO_READ_TIMEOUT_SECONDS": "1",
        "TWOSTEP_RETRY_BACKOFF_BASE_SECONDS": "0.5",
        "TWOSTEP_RETRY_BACKOFF_MAX_SECONDS": "1",
    }
    with running_system(database_url, redis_url, tmp_path, settings=settings) as system:
        yield system


@pytest.mark.parametrize("code_typed", ["wrong", "right"])
def test_a_lost_check_answer_is_settled_by_twilios_record_never_by_inference(
    impatient_system: System, code_typed: str, report: Any
) -> None:
    """Row 3: a check's answer is lost, then the verification is gone at Twilio (approved by
    that very check — or canceled by anyone). The retry asks the Attempts API: a wrong code
    never comes back approved, a right one does."""
    system, phone = impatient_system, random_phone()
    caller = Caller(system, system.api_key)
    verification = caller.json("POST", "/v1/verifications", 202, json={"to": phone})
    caller.pending(verification["id"])
    (message,) = system.sandbox.messages(phone)
    typed = message["code"] if code_typed == "right" else wrong_code(message["code"])
    checks_before = system.sandbox.stats()["requests_by_endpoint"].get("CreateVerificationCheck", 0)
    system.sandbox.set_faults(timeout_rate=1.0, hang_seconds=3)
    check = caller.json(
        "POST", f"/v1/verifications/{verification['id']}/checks", 202, json={"code": typed}
    )
    wait_until(
        lambda: (
            system.sandbox.stats()["requests_by_endpoint"].get("CreateVerificationCheck", 0)
            > checks_before
        ),
        timeout=20,
        what="the check at Twilio, its answer hanging",
    )
    system.sandbox.clear_faults()
    if code_typed == "wrong":  # gone for another reason than this check
        system.sandbox.cancel_verification(message["verification_sid"])
    path = f"/v1/verifications/{verification['id']}/checks/{check['id']}"
    settled = wait_until(
        lambda: (
            (body := caller.json("GET", path, 200, params={"wait": 5}))["status"] != "queued"
            and body
        ),
        timeout=30,
        what="the check to settle",
    )
    expected = "approved" if code_typed == "right" else "expired"
    assert settled["status"] == expected, settled
    final = caller.json("GET", f"/v1/verifications/{verification['id']}", 200)
    assert final["status"] == expected
    attempts = system.sandbox.stats()["requests_by_endpoint"].get("ListVerificationAttempt", 0)
    assert attempts >= 1, "settled from Twilio's record"
    report(
        "a lost check answer", typed=code_typed, check=settled["status"], attempts_asked=attempts
    )
