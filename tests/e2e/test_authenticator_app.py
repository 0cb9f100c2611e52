"""An authenticator app (TOTP) as a second factor, over HTTP, against the real processes: the
API shows the secret once, a Celery worker makes the factor at the sandbox (Twilio Verify's
Factors API, through the real ``twilio`` SDK) at the first code and checks every code there;
codes computed here with ``pyotp``; a code accepted once is refused a second time."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pyotp

from tests.e2e.conftest import System
from tests.e2e.test_two_step_story import Client
from tests.support import early_in_a_totp_step


def test_an_authenticator_app_is_enrolled_and_signs_in_once_per_code(system: System) -> None:
    client = Client(system)
    user = f"alan-{uuid.uuid4().hex[:8]}"
    factors_path, challenges = f"/v1/users/{user}/factors", f"/v1/users/{user}/challenges"

    enrolment = client.call("POST", factors_path, 202, json={"type": "totp", "label": "alan"})
    uri = enrolment["otpauth_uri"]
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    assert uri.startswith("otpauth://totp/") and len(secret) == 32
    assert enrolment["factor"]["type"] == "totp" and enrolment["factor"]["status"] == "unverified"
    verification = enrolment["verification"]
    assert (verification["channel"], verification["status"]) == ("totp", "pending")  # no send
    totp = pyotp.TOTP(secret)
    step = totp.interval
    # Steps -1, 0 and +1 all valid until the test is done, on the sandbox's clock.
    now = early_in_a_totp_step(step, offset=system.sandbox.clock_offset())

    assert client.check(verification["id"], totp.at(now + 3 * step)) == "rejected"
    assert client.check(verification["id"], totp.at(now)) == "approved"
    [factor] = client.call("GET", factors_path, 200)["factors"]
    assert (factor["type"], factor["status"]) == ("totp", "verified")

    login = client.call("POST", challenges, 202, json={})
    assert (login["channel"], login["status"], login["purpose"]) == ("totp", "pending", "login")
    # The enrolment's code was used: within its validity it is not accepted again.
    assert client.check(login["id"], totp.at(now)) == "rejected"
    ahead = totp.at(now + step)  # the next step's code is valid now (skew 1)
    assert client.check(login["id"], ahead) == "approved"

    again = client.call("POST", challenges, 202, json={"factor_id": factor["id"]})
    assert client.check(again["id"], ahead) == "rejected"  # replayed
    assert client.check(again["id"], totp.at(now - step)) == "approved"

    refusals = [
        client.call("POST", challenges, 422, json={"channel": "sms", "factor_id": factor["id"]}),
        client.call("POST", f"/v1/verifications/{again['id']}/resend", 409, json={}),
    ]
    assert [r["code"] for r in refusals] == ["invalid_request", "verification_not_pending"]
    assert secret not in system.logs()
    events = client.call("GET", f"/v1/users/{user}/events?limit=100", 200)["events"]
    assert secret not in str(events)
