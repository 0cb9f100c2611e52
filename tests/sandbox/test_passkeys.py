"""Twilio Verify Passkeys through the real ``twilio`` SDK against the sandbox, which verifies
WebAuthn for real (py_webauthn): a passkey registered and used by a software authenticator
(``sandbox/authenticator.py``), and every tampered answer refused as Twilio refuses it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from twilio.rest import Client
from twilio.rest.verify.v2.service.approve_challenge import ApproveChallengeList
from twilio.rest.verify.v2.service.new_challenge import NewChallengeList
from twilio.rest.verify.v2.service.new_factor import NewFactorList
from twilio.rest.verify.v2.service.new_verify_factor import NewVerifyFactorList

from sandbox.authenticator import Authenticator, b64url
from tests.sandbox.conftest import twilio_error

ORIGIN = "https://login.example.com"
RP_ID = "example.com"


@pytest.fixture
def passkeys(twilio: Client) -> Any:
    """A service with a passkeys configuration, as a login server's would have."""
    created = twilio.verify.v2.services.create(
        friendly_name="passkeys",
        passkeys_relying_party_id=RP_ID,
        passkeys_relying_party_name="Lantern",
        passkeys_relying_party_origins=ORIGIN,
        passkeys_authenticator_attachment="platform",
        passkeys_discoverable_credentials="preferred",
        passkeys_user_verification="required",
    )
    return twilio.verify.v2.services(created.sid)


def _identity() -> str:
    return f"user-{uuid.uuid4().hex}"


def _register(service: Any, device: Authenticator, identity: str) -> Any:
    factor = service.new_factors.create(
        NewFactorList.CreateNewPasskeysFactorRequest(
            {"friendly_name": "ada's laptop", "identity": identity}
        )
    )
    assert (factor.status, factor.factor_type) == ("unverified", "passkeys")
    options = factor.options["publicKey"]
    assert options["rp"] == {"id": RP_ID, "name": "Lantern"}
    assert options["authenticatorSelection"]["userVerification"] == "required"
    attestation = device.register(options, ORIGIN)
    return factor, attestation


def _verify(service: Any, attestation: dict[str, Any]) -> Any:
    return service.new_verify_factors.update(
        NewVerifyFactorList.VerifyPasskeysFactorRequest(attestation)
    )


def _challenge(service: Any, identity: str, factor_sid: str | None = None) -> Any:
    body = {"identity": identity} | ({"factor_sid": factor_sid} if factor_sid else {})
    return service.new_challenge().create(NewChallengeList.CreatePasskeysChallengeRequest(body))


def _approve(service: Any, assertion: dict[str, Any]) -> Any:
    return service.approve_challenge.update(
        ApproveChallengeList.ApprovePasskeysChallengeRequest(assertion)
    )


@pytest.mark.parametrize("attestation", ["none", "packed"])
def test_a_passkey_registered_then_used_to_sign_in(passkeys: Any, attestation: str) -> None:
    device, identity = Authenticator(attestation=attestation), _identity()
    factor, answer = _register(passkeys, device, identity)
    verified = _verify(passkeys, answer)
    assert (verified.sid, verified.status) == (factor.sid, "verified")

    challenge = _challenge(passkeys, identity)
    options = challenge.options["publicKey"]
    assert (challenge.status, challenge.factor_sid) == ("pending", factor.sid)
    assert [c["id"] for c in options["allowCredentials"]] == [answer["rawId"]]
    approved = _approve(passkeys, device.sign_in(options, ORIGIN))
    assert (approved.sid, approved.status, approved.factor_sid) == (
        challenge.sid,
        "approved",
        factor.sid,
    )
    # Approved once: the same challenge is not approved again.
    refused = twilio_error(lambda: _approve(passkeys, device.sign_in(options, ORIGIN)))
    assert (refused.status, refused.code) == (403, 60324)


def test_an_attestation_for_another_origin_or_challenge_leaves_the_factor_unverified(
    passkeys: Any,
) -> None:
    device, identity = Authenticator(), _identity()
    factor, _ = _register(passkeys, device, identity)
    options = factor.options["publicKey"]
    phished = device.register(options, "https://login.example.com.evil.test")
    refused = twilio_error(lambda: _verify(passkeys, phished))
    assert (refused.status, refused.code) == (403, 60311)
    other_challenge = device.register({**options, "challenge": b64url(b"\0" * 32)}, ORIGIN)
    refused = twilio_error(lambda: _verify(passkeys, other_challenge))
    assert (refused.status, refused.code) == (403, 60311)
    wrong_rp = device.register(options, ORIGIN, rp_id="evil.test")
    refused = twilio_error(lambda: _verify(passkeys, wrong_rp))
    assert (refused.status, refused.code) == (403, 60311)
    unverified_user = Authenticator(verifies_user=False).register(options, ORIGIN)
    refused = twilio_error(lambda: _verify(passkeys, unverified_user))
    assert (refused.status, refused.code) == (403, 60311), "the service requires verification"
    # No challenge to a factor that was never verified: Twilio's 60318.
    refused = twilio_error(lambda: _challenge(passkeys, identity))
    assert (refused.status, refused.code) == (403, 60318)


def test_tampered_assertions_are_refused(passkeys: Any) -> None:
    device, identity = Authenticator(), _identity()
    _factor, answer = _register(passkeys, device, identity)
    _verify(passkeys, answer)
    options = _challenge(passkeys, identity).options["publicKey"]
    stranger = Authenticator()  # a passkey for the same site, never registered here
    stranger.register({"rp": {"id": RP_ID}, "challenge": b64url(b"x" * 32)}, ORIGIN)
    tampered = {
        "another origin": device.sign_in(options, "https://evil.test"),
        "another challenge": device.sign_in(options, ORIGIN, challenge=b64url(b"y" * 32)),
        "an unknown key": stranger.sign_in(
            {"rpId": RP_ID, "challenge": options["challenge"]}, ORIGIN
        ),
    }
    for what, assertion in tampered.items():
        refused = twilio_error(lambda assertion=assertion: _approve(passkeys, assertion))
        assert (refused.status, refused.code) == (403, 60324), what

    approved = _approve(passkeys, device.sign_in(options, ORIGIN))
    assert approved.status == "approved"
    # An answer whose counter is not past the last one seen: a replayed or cloned key's.
    again = _challenge(passkeys, identity).options["publicKey"]
    seen = device.passkeys[0].sign_count
    refused = twilio_error(
        lambda: _approve(passkeys, device.sign_in(again, ORIGIN, sign_count=seen))
    )
    assert (refused.status, refused.code) == (403, 60324)
    assert _approve(passkeys, device.sign_in(again, ORIGIN)).status == "approved"


def test_missing_parts_and_configuration_are_twilios_errors(twilio: Client, passkeys: Any) -> None:
    bare = twilio.verify.v2.services(twilio.verify.v2.services.create(friendly_name="bare").sid)
    request = NewFactorList.CreateNewPasskeysFactorRequest
    no_rp = twilio_error(
        lambda: bare.new_factors.create(request({"friendly_name": "x", "identity": _identity()}))
    )
    assert (no_rp.status, no_rp.code) == (400, 60371)
    with_rp = {"relying_party": {"id": RP_ID, "name": "Lantern", "origins": [ORIGIN]}}
    no_criteria = twilio_error(
        lambda: bare.new_factors.create(
            request({"friendly_name": "x", "identity": _identity(), "config": with_rp})
        )
    )
    assert (no_criteria.status, no_criteria.code) == (400, 60393)
    no_service_config = twilio_error(lambda: _challenge(bare, _identity()))
    assert (no_service_config.status, no_service_config.code) == (400, 60394)

    device, identity = Authenticator(), _identity()
    _factor, answer = _register(passkeys, device, identity)
    _verify(passkeys, answer)
    assertion = device.sign_in(_challenge(passkeys, identity).options["publicKey"], ORIGIN)
    for part, code in (("authenticatorData", 60379), ("signature", 60381)):
        response = {k: v for k, v in assertion["response"].items() if k != part}
        refused = twilio_error(
            lambda response=response: _approve(passkeys, assertion | {"response": response})
        )
        assert (refused.status, refused.code) == (400, code)
