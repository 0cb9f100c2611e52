"""An authenticator app (TOTP) as a second factor, over HTTP, against the real processes: the
API shows the secret once, a Celery worker makes the factor at the sandbox (Twilio Verify's
Factors API, through the real ``twilio`` SDK) at the first code and checks every code there;
codes computed here with ``pyotp``; a code accepted once is refused a second time."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pyotp

from shared.kit.destinations import mask_destination as mask
from tests.e2e.conftest import System
from tests.e2e.test_two_step_story import Client
from tests.support import early_in_a_totp_step, random_phone


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
        client.call("POST", challenges, 409, json={"channel": "sms", "factor_id": factor["id"]}),
        client.call("POST", f"/v1/verifications/{again['id']}/resend", 409, json={}),
    ]
    assert [r["code"] for r in refusals] == ["channel_mismatch", "verification_not_pending"]
    assert secret not in system.logs()
    events = client.call("GET", f"/v1/users/{user}/events?limit=100", 200)["events"]
    assert secret not in str(events)


def test_the_app_is_preferred_the_rest_offered_and_losing_it_asked_for(system: System) -> None:
    """A phone enrolled after the app: challenges still go to the app (the strongest), the phone
    is offered instead; the last app goes only when the login server asks explicitly."""
    client = Client(system)
    user = f"joan-{uuid.uuid4().hex[:8]}"
    factors_path, challenges = f"/v1/users/{user}/factors", f"/v1/users/{user}/challenges"
    enrolment = client.call("POST", factors_path, 202, json={"type": "totp"})
    totp = pyotp.TOTP(parse_qs(urlsplit(enrolment["otpauth_uri"]).query)["secret"][0])
    now = early_in_a_totp_step(totp.interval, offset=system.sandbox.clock_offset())
    assert client.check(enrolment["verification"]["id"], totp.at(now)) == "approved"
    phone = random_phone()
    by_phone = client.call("POST", factors_path, 202, json={"phone": phone})
    client.settled(by_phone["verification"]["id"], "pending")
    code = client.sandbox.latest_code(phone)
    assert client.check(by_phone["verification"]["id"], code) == "approved"
    app_id, phone_id = enrolment["factor"]["id"], by_phone["factor"]["id"]

    login = client.call("POST", challenges, 202, json={})
    assert (login["channel"], login["factor_id"]) == ("totp", app_id)
    [offered] = login["alternatives"]
    assert (offered["id"], offered["type"], offered["phone"]) == (phone_id, "phone", mask(phone))
    instead = client.call("POST", challenges, 202, json={"factor_id": phone_id})
    assert (instead["channel"], instead["factor_id"]) == ("sms", phone_id)
    assert [f["id"] for f in instead["alternatives"]] == [app_id]

    refused = client.call("DELETE", f"{factors_path}/{app_id}", 409)
    assert refused["code"] == "last_strong_factor" and "allow_downgrade" in refused["detail"]
    assert {f["status"] for f in client.call("GET", factors_path, 200)["factors"]} == {"verified"}
    client.call("DELETE", f"{factors_path}/{app_id}?allow_downgrade=true", 204)
    after = client.call("POST", challenges, 202, json={})
    assert (after["channel"], after["factor_id"], after["alternatives"]) == ("sms", phone_id, [])
