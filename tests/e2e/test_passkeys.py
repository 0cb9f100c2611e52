"""Passkeys as a second factor, over HTTP, against the real processes: the API takes the
enrolment, a Celery worker has Twilio's options made at the sandbox (Verify Passkeys, through
the real ``twilio`` SDK), a software authenticator signs them as a browser would, and the
sandbox verifies the WebAuthn for real. What an attacker would tamper with is refused as a
rejected check."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from sandbox.authenticator import Authenticator
from tests.e2e.conftest import System
from tests.e2e.test_two_step_story import Client

RP_ID, ORIGIN = "localhost", "http://localhost:8000"


@pytest.fixture
def client(system: System) -> Client:
    """A client of the default tenant, whose login site is the relying party."""
    system.run("tenants", "passkeys", "default", "--rp-id", RP_ID, "--origin", ORIGIN)
    return Client(system)


def checked(client: Client, verification_id: str, credential: dict[str, Any]) -> str:
    created = client.call(
        "POST",
        f"/v1/verifications/{verification_id}/checks?wait=15",
        200,
        json={"credential": credential},
    )
    return str(created["status"])


def enrolled(client: Client, user: str, device: Authenticator) -> dict[str, Any]:
    """A passkey made by ``device`` and verified: the factor."""
    enrolment = client.call(
        "POST", f"/v1/users/{user}/factors", 202, json={"type": "passkey", "label": "Ada's laptop"}
    )
    assert enrolment["factor"]["type"] == "passkey"
    assert enrolment["verification"]["channel"] == "passkey"
    verification = client.settled(enrolment["verification"]["id"], "pending")
    options = verification["creation_options"]
    assert options["rp"]["id"] == RP_ID and options["user"]["displayName"] == "Ada's laptop"
    assert verification["request_options"] is None and verification["to"] == "passkey"
    assert checked(client, verification["id"], device.register(options, ORIGIN)) == "approved"
    return dict(enrolment["factor"])


def login_options(client: Client, user: str, **body: Any) -> dict[str, Any]:
    challenge = client.call("POST", f"/v1/users/{user}/challenges", 202, json=body)
    assert challenge["channel"] == "passkey" and challenge["purpose"] == "login"
    return {**challenge, **client.settled(challenge["id"], "pending")}


def test_a_passkey_is_registered_signs_in_and_once_removed_signs_in_no_more(
    client: Client, system: System
) -> None:
    user = f"ada-{uuid.uuid4().hex[:8]}"
    device = Authenticator()
    factor = enrolled(client, user, device)
    [listed] = client.call("GET", f"/v1/users/{user}/factors", 200)["factors"]
    assert (listed["id"], listed["status"], listed["label"]) == (
        factor["id"],
        "verified",
        "Ada's laptop",
    )

    login = login_options(client, user)
    assert login["factor_id"] == factor["id"] and login["creation_options"] is None
    options = login["request_options"]
    assert options["rpId"] == RP_ID
    assertion = device.sign_in(options, ORIGIN)
    assert checked(client, login["id"], assertion) == "approved"
    # The same signature again, on a new challenge: signed for the old one.
    replay = login_options(client, user)
    assert checked(client, replay["id"], assertion) == "rejected"
    # Another device, never registered: nothing it signs is the user's.
    stranger = login_options(client, user)
    outsider = Authenticator()
    outsider.register({"challenge": "c2VlbiBub3doZXJl", "rp": {"id": RP_ID}}, ORIGIN)
    forged = outsider.sign_in({**stranger["request_options"], "allowCredentials": []}, ORIGIN)
    assert checked(client, stranger["id"], forged) == "rejected"
    # A code where a credential is due, and the other way round: refused, nothing spent.
    wrong_kind = client.call(
        "POST", f"/v1/verifications/{stranger['id']}/checks", 409, json={"code": "123456"}
    )
    assert wrong_kind["code"] == "channel_mismatch"

    # Passkeys are strong: the last one goes only when the login server says so.
    factor_path = f"/v1/users/{user}/factors/{factor['id']}"
    assert client.call("DELETE", factor_path, 409)["code"] == "last_strong_factor"
    client.call("DELETE", f"{factor_path}?allow_downgrade=true", 204)
    refused = client.call(
        "POST", f"/v1/users/{user}/challenges", 409, json={"factor_id": factor["id"]}
    )
    assert refused["code"] == "factor_not_verified"
    assert client.call("POST", f"/v1/users/{user}/challenges", 409, json={})["code"] == (
        "no_verified_factor"
    )
    logs = system.logs()
    assert assertion["response"]["signature"] not in logs
    assert assertion["response"]["clientDataJSON"] not in logs


@pytest.mark.parametrize("tampering", ["origin", "challenge", "counter"])
def test_a_tampered_assertion_is_a_rejected_check(client: Client, tampering: str) -> None:
    """Each as an attacker would send it: signed on their own site, for a challenge they saw
    earlier, or a copy of the authenticator whose counter has gone back."""
    user = f"eve-{uuid.uuid4().hex[:8]}"
    device = Authenticator()
    enrolled(client, user, device)
    first = login_options(client, user)
    assert checked(client, first["id"], device.sign_in(first["request_options"], ORIGIN)) == (
        "approved"
    )
    login = login_options(client, user)
    options = login["request_options"]
    if tampering == "origin":
        answer = device.sign_in(options, "http://localhost:8000.evil.test")
    elif tampering == "challenge":
        answer = device.sign_in(options, ORIGIN, challenge=first["request_options"]["challenge"])
    else:
        answer = device.sign_in(options, ORIGIN, sign_count=1)  # the first login's counter
    assert checked(client, login["id"], answer) == "rejected"
    # The user, with the real device, still signs in: a rejection spends one check only.
    assert checked(client, login["id"], device.sign_in(options, ORIGIN)) == "approved"
