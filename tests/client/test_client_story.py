"""A login server's whole story told through the client, against the real processes, with
each client (sync, async) on each database: enrolment with a typo first, logins with a wrong
code, a re-send too early and one by call, a lockout, recovery codes, the trail, 2SA off."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pyotp
import pytest
from twostep_client import (
    InvalidEmailAddress,
    InvalidPhoneNumber,
    LastStrongFactor,
    MaxAttemptsReached,
    NotFound,
    NoVerifiedFactor,
    RateLimited,
    Unauthorized,
    UserLocked,
    Verification,
    VerificationNotPending,
)

from sandbox.authenticator import Authenticator
from tests.client.conftest import RESEND_COOLDOWN_SECONDS
from tests.e2e.conftest import System
from tests.support import early_in_a_totp_step, random_phone

LANDLINE = "+14155550201"  # the sandbox's Lookup says landline (and its Verify refuses SMS)
WAIT = 20.0
RP_ID, ORIGIN = "localhost", "http://localhost:8000"


def wrong(code: str) -> str:
    return "".join(str((int(digit) + 1) % 10) for digit in code)


def sent(client: Any, verification: Verification) -> Verification:
    ready: Verification = client.wait_for_verification(verification.id, timeout=WAIT)
    assert ready.sent, ready
    return ready


def test_enrol_then_log_in_with_every_turn_a_user_takes(
    connect: Any, client_system: System
) -> None:
    client, inbox = connect(), client_system.sandbox
    user = f"client-{uuid.uuid4().hex[:8]}"
    with pytest.raises(NoVerifiedFactor):
        client.start_challenge(user)
    with pytest.raises(InvalidPhoneNumber):
        client.enroll_factor(user, "+1415555")

    # A typo'd number that is a landline: Lookup says so before anything is sent (line types
    # are checked in production), and 2SA stays off.
    typo = client.enroll_factor(user, LANDLINE)
    failed = client.wait_for_verification(typo.verification.id, timeout=WAIT)
    assert (failed.status, failed.error and failed.error.code) == (
        "failed",
        "line_type_not_allowed",
    )
    assert not client.list_factors(user).two_step_enabled

    phone = random_phone()
    enrolment = client.enroll_factor(user, phone)
    assert enrolment.factor.status == "unverified" and enrolment.factor.phone != phone
    sent(client, enrolment.verification)
    approved = client.check(enrolment.verification.id, inbox.latest_code(phone), wait=WAIT)
    assert approved.approved, approved
    factors = client.list_factors(user)
    assert factors.two_step_enabled and [f.id for f in factors.verified] == [enrolment.factor.id]

    login = sent(client, client.start_challenge(user))
    assert login.purpose == "login" and login.user_id == user
    code = inbox.latest_code(phone)
    rejected = client.check(login.id, wrong(code), wait=WAIT)
    assert (rejected.decided, rejected.status) == (True, "rejected")
    with pytest.raises(RateLimited) as too_soon:
        client.resend(login.id, channel="call")
    assert too_soon.value.limit == "resend_cooldown"
    assert 0 < (too_soon.value.retry_after or 0) <= RESEND_COOLDOWN_SECONDS
    time.sleep(too_soon.value.retry_after or RESEND_COOLDOWN_SECONDS)
    assert client.resend(login.id, channel="call").status == "pending"
    called = _wait_for_call(client_system, phone)
    assert called["code"] == code  # a re-send, by call: the same code
    assert client.check(login.id, code, wait=WAIT).approved
    with pytest.raises(VerificationNotPending):
        client.check(login.id, code)

    codes = client.generate_recovery_codes(user)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert client.redeem_recovery_code(user, codes[3]).approved
    assert not client.redeem_recovery_code(user, codes[3]).approved

    trail = [event.type for event in client.events(user, limit=200).events]
    for kind in ("factor.verified", "verification.approved", "recovery_code.used"):
        assert kind in trail, trail
    assert all(phone not in str(event) for event in client.events(user).events)

    client.remove_factor(user, enrolment.factor.id)
    assert not client.list_factors(user).two_step_enabled
    with pytest.raises(NoVerifiedFactor):
        client.start_challenge(user)


def test_an_email_factor_beside_a_phone_and_a_choice_at_sign_in(
    connect: Any, client_system: System
) -> None:
    client, inbox = connect(), client_system.sandbox
    user, phone = f"client-{uuid.uuid4().hex[:8]}", random_phone()
    address = f"{user}@example.com"
    with pytest.raises(InvalidEmailAddress):
        client.enroll_factor(user, email="ada@")
    factors = {}
    for to, enrolment in (
        (phone, client.enroll_factor(user, phone)),
        (address, client.enroll_factor(user, email=address.upper())),
    ):
        sent(client, enrolment.verification)
        assert client.check(enrolment.verification.id, inbox.latest_code(to), wait=WAIT).approved
        factors[to] = enrolment.factor
    assert factors[address].email == "c•••@example.com" and factors[address].phone is None
    assert len(client.list_factors(user).verified) == 2  # an address does not retire a phone

    by_email = sent(client, client.start_challenge(user, factor_id=factors[address].id))
    assert by_email.channel == "email"
    assert client.check(by_email.id, inbox.latest_code(address), wait=WAIT).approved
    # Switched to the phone, by WhatsApp.
    by_whatsapp = sent(
        client, client.start_challenge(user, factor_id=factors[phone].id, channel="whatsapp")
    )
    assert by_whatsapp.channel == "whatsapp"
    assert client.check(by_whatsapp.id, inbox.latest_code(phone), wait=WAIT).approved
    assert all(address not in str(event) for event in client.events(user, limit=200).events)


def test_an_authenticator_app_enrolled_then_a_login_with_it(
    connect: Any, client_system: System
) -> None:
    client = connect()
    user = f"client-{uuid.uuid4().hex[:8]}"
    enrolment = client.enroll_app(user, label="grace")
    assert enrolment.otpauth_uri and enrolment.factor.type == "totp"
    assert enrolment.verification.status == "pending"  # nothing to send
    totp = pyotp.parse_uri(enrolment.otpauth_uri)
    assert isinstance(totp, pyotp.TOTP)
    now = early_in_a_totp_step(totp.interval, offset=client_system.sandbox.clock_offset())
    assert client.check(enrolment.verification.id, totp.at(now), wait=WAIT).approved
    assert client.list_factors(user).two_step_enabled
    login = client.start_challenge(user)
    assert login.channel == "totp" and login.status == "pending"
    assert login.factor_id == enrolment.factor.id and login.alternatives == ()
    # The enrolment's code again: refused (a code is good once); the next step's is not.
    assert client.check(login.id, totp.at(now), wait=WAIT).status == "rejected"
    assert client.check(login.id, totp.at(now + totp.interval), wait=WAIT).approved
    # The user's only app, and so the last strong factor: removed only when asked explicitly.
    with pytest.raises(LastStrongFactor):
        client.remove_factor(user, enrolment.factor.id)
    assert client.list_factors(user).two_step_enabled
    client.remove_factor(user, enrolment.factor.id, allow_downgrade=True)
    assert not client.list_factors(user).two_step_enabled


def test_a_passkey_registered_then_a_login_with_it(connect: Any, client_system: System) -> None:
    """The browser's part played by a software authenticator, as ``navigator.credentials``
    would answer; the sandbox verifies its WebAuthn."""
    client = connect()
    user = f"client-{uuid.uuid4().hex[:8]}"
    client_system.run("tenants", "passkeys", "default", "--rp-id", RP_ID, "--origin", ORIGIN)
    device = Authenticator()
    enrolment = client.enroll_passkey(user, label="Ada's phone", wait=WAIT)
    assert enrolment.factor.type == "passkey" and enrolment.verification.sent
    options = enrolment.verification.creation_options
    assert options is not None and options["rp"]["id"] == RP_ID
    attestation = device.register(options, ORIGIN)
    assert client.check_passkey(enrolment.verification.id, attestation, wait=WAIT).approved
    [factor] = client.list_factors(user).factors
    assert (factor.type, factor.status, factor.label) == ("passkey", "verified", "Ada's phone")

    login = client.start_challenge(user, wait=WAIT)
    assert (login.channel, login.status, login.factor_id) == ("passkey", "pending", factor.id)
    assert login.request_options is not None
    tampered = device.sign_in(login.request_options, "https://evil.example")
    assert client.check_passkey(login.id, tampered, wait=WAIT).status == "rejected"
    assertion = device.sign_in(login.request_options, ORIGIN)
    assert client.check_passkey(login.id, assertion, wait=WAIT).approved
    with pytest.raises(LastStrongFactor):
        client.remove_factor(user, factor.id)
    client.remove_factor(user, factor.id, allow_downgrade=True)
    with pytest.raises(NoVerifiedFactor):
        client.start_challenge(user)


def test_wrong_codes_lock_the_user_out_until_an_admin_lifts_it(
    connect: Any, client_system: System
) -> None:
    client, inbox = connect(), client_system.sandbox
    user, phone = f"locked-{uuid.uuid4().hex[:8]}", random_phone()
    enrolment = client.enroll_factor(user, phone)
    sent(client, enrolment.verification)
    assert client.check(enrolment.verification.id, inbox.latest_code(phone), wait=WAIT).approved

    login = sent(client, client.start_challenge(user))
    right = inbox.latest_code(phone)
    outcomes = [client.check(login.id, wrong(right), wait=WAIT).status for _ in range(5)]
    assert outcomes[:4] == ["rejected"] * 4, outcomes
    with pytest.raises(MaxAttemptsReached):
        client.check(login.id, right)
    # Five wrong codes lock the user out: a new challenge is refused before any code is sent.
    sends = inbox.sends_to(phone)
    with pytest.raises(UserLocked) as locked:
        client.start_challenge(user)
    assert (locked.value.retry_after or 0) > 0 and locked.value.status == 429
    assert inbox.sends_to(phone) == sends

    client.release_lockout(user_id=user)  # the user's own guesses locked only the user
    again = sent(client, client.start_challenge(user))
    assert client.check(again.id, inbox.latest_code(phone), wait=WAIT).approved


def test_what_a_login_server_gets_wrong_is_named(connect: Any, client_system: System) -> None:
    with pytest.raises(Unauthorized) as refused:
        connect(api_key="tsk_not-a-key").get_verification(str(uuid.uuid4()))
    assert refused.value.code == "unauthorized" and refused.value.request_id
    client = connect()
    with pytest.raises(NotFound):
        client.get_verification(str(uuid.uuid4()))
    with pytest.raises(NotFound):
        client.get_check(str(uuid.uuid4()), "..%2F..")  # one path segment, encoded as such
    with pytest.raises(ValueError, match="cannot be an id"):
        client.list_factors("../../verifications")  # the API could never route it


def _wait_for_call(system: System, phone: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        calls = [m for m in system.sandbox.messages(phone) if m["channel"] == "call"]
        if calls:
            return calls[0]
        time.sleep(0.1)
    raise AssertionError(f"no call to {phone}")
