"""Codes by email and WhatsApp, over HTTP, against the real processes (API, a Celery worker, the
sandbox through the real ``twilio`` SDK): standalone verifications, an email factor beside a
phone, a login on either, and addresses masked everywhere they are shown."""

from __future__ import annotations

import uuid

from tests.e2e.conftest import System
from tests.e2e.test_two_step_story import Client
from tests.support import random_phone


def _address() -> tuple[str, str]:
    """An address as a user might type it, and as twostep keeps it."""
    local = f"ada.{uuid.uuid4().hex[:8]}"
    return f" {local.upper()}@Example.COM ", f"{local}@example.com"


def test_a_code_by_email_and_one_by_whatsapp(system: System) -> None:
    client = Client(system)
    typed, address = _address()
    by_email = client.call("POST", "/v1/verifications", 202, json={"to": typed, "channel": "email"})
    assert (by_email["channel"], by_email["to"]) == ("email", "a•••@example.com")
    client.settled(by_email["id"], "pending")
    [message] = client.sandbox.messages(address)  # normalised: one inbox, whatever the case
    assert message["channel"] == "email"
    assert client.check(by_email["id"], "000000" if message["code"] != "000000" else "111111") == (
        "rejected"
    )
    assert client.check(by_email["id"], message["code"]) == "approved"

    phone = random_phone()
    by_whatsapp = client.call(
        "POST", "/v1/verifications", 202, json={"to": phone, "channel": "whatsapp"}
    )
    client.settled(by_whatsapp["id"], "pending")
    [message] = client.sandbox.messages(phone)
    assert message["channel"] == "whatsapp"
    assert client.check(by_whatsapp["id"], message["code"]) == "approved"

    # Each destination takes only the channels that reach it, refused before anything is sent.
    refusals = [
        client.call("POST", "/v1/verifications", 422, json={"to": address, "channel": "sms"}),
        client.call("POST", "/v1/verifications", 422, json={"to": phone, "channel": "email"}),
        client.call("POST", "/v1/verifications", 422, json={"to": "ada@", "channel": "email"}),
    ]
    assert [r["code"] for r in refusals] == [
        "invalid_phone_number",
        "invalid_email_address",
        "invalid_email_address",
    ]
    pending = client.call("POST", "/v1/verifications", 202, json={"to": phone})
    client.settled(pending["id"], "pending")
    resend = client.call(
        "POST", f"/v1/verifications/{pending['id']}/resend", 409, json={"channel": "email"}
    )
    assert resend["code"] == "channel_mismatch"
    assert client.sandbox.sends_to(address) == 1

    # The longest address there is (254), on a long domain: stored encrypted, masked, sent.
    longest = f"{'l' * 55}.{uuid.uuid4().hex[:8]}@{'d' * 63}.{'e' * 63}.{'f' * 49}.example.com"
    assert len(longest) == 254
    by_email = client.call(
        "POST", "/v1/verifications", 202, json={"to": longest, "channel": "email"}
    )
    assert by_email["to"] == "l•••@" + longest.rpartition("@")[2]
    client.settled(by_email["id"], "pending")

    logs = system.logs()
    assert address not in logs and address.split("@")[0] not in logs


def test_an_email_factor_beside_a_phone_and_a_login_on_each(system: System) -> None:
    client = Client(system)
    user = f"grace-{uuid.uuid4().hex[:8]}"
    factors_path, challenges = f"/v1/users/{user}/factors", f"/v1/users/{user}/challenges"
    phone, (typed, address) = random_phone(), _address()

    phone_factor = _enrol(client, factors_path, {"phone": phone}, phone)
    email_factor = _enrol(client, factors_path, {"email": typed}, address)
    assert (email_factor["email"], email_factor["phone"]) == ("a•••@example.com", None)
    factors = client.call("GET", factors_path, 200)
    # A new address retires the user's old addresses, never their phone.
    assert {f["id"]: f["status"] for f in factors["factors"]} == {
        phone_factor["id"]: "verified",
        email_factor["id"]: "verified",
    }

    # Without a factor named, the latest verified one: the address.
    login = client.call("POST", challenges, 202, json={})
    assert (login["channel"], login["to"]) == ("email", "a•••@example.com")
    client.settled(login["id"], "pending")
    assert client.check(login["id"], client.sandbox.latest_code(address)) == "approved"

    # The phone, named, by WhatsApp instead of its SMS.
    login = client.call(
        "POST", challenges, 202, json={"factor_id": phone_factor["id"], "channel": "whatsapp"}
    )
    assert login["channel"] == "whatsapp"
    client.settled(login["id"], "pending")
    assert client.check(login["id"], client.sandbox.latest_code(phone)) == "approved"

    wrong_channel = client.call(
        "POST", challenges, 409, json={"factor_id": email_factor["id"], "channel": "sms"}
    )
    assert wrong_channel["code"] == "channel_mismatch"
    unknown = client.call("POST", challenges, 404, json={"factor_id": str(uuid.uuid4())})
    assert unknown["code"] == "not_found"

    client.call("DELETE", f"{factors_path}/{email_factor['id']}", 204)
    gone = client.call("POST", challenges, 409, json={"factor_id": email_factor["id"]})
    assert gone["code"] == "factor_not_verified"  # two-step is still on: the phone
    assert client.call("POST", challenges, 202, json={})["channel"] == "sms"


def _enrol(client: Client, path: str, body: dict[str, str], to: str) -> dict[str, object]:
    enrolment = client.call("POST", path, 202, json=body)
    client.settled(enrolment["verification"]["id"], "pending")
    code = client.sandbox.latest_code(to)
    assert client.check(enrolment["verification"]["id"], code) == "approved"
    factor: dict[str, object] = enrolment["factor"]
    return factor
