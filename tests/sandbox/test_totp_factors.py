"""Twilio Verify's Factors API for TOTP, through the real ``twilio`` SDK against the sandbox:
every answer validates against Twilio's schemas (the ``recorder`` fixture), codes are RFC 6238's
(computed here with ``pyotp`` from the secret Twilio shows once), and Twilio's caps hold."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from tests.sandbox.conftest import twilio_error


def _identity() -> str:
    return f"user-{uuid.uuid4().hex}"  # 8 to 64 characters, no personal data


def _wrong(code: str) -> str:
    return "".join(str((int(digit) + 5) % 10) for digit in code)


def _new_factor(service: Any, identity: str, **config: Any) -> tuple[Any, pyotp.TOTP]:
    factor = service.entities(identity).new_factors.create(
        friendly_name="ada's phone", factor_type="totp", **config
    )
    assert factor.status == "unverified" and factor.factor_type == "totp"
    uri = factor.binding["uri"]
    query = parse_qs(urlsplit(uri).query)
    assert uri.startswith("otpauth://totp/") and query["secret"] == [factor.binding["secret"]]
    totp = pyotp.TOTP(
        factor.binding["secret"],
        digits=int(query["digits"][0]),
        interval=int(query["period"][0]),
    )
    return factor, totp


def test_a_factor_is_verified_by_its_first_right_code_then_challenged(service: Any) -> None:
    identity = _identity()
    factor, totp = _new_factor(service, identity)
    assert factor.config == {"alg": "sha1", "skew": 1, "code_length": 6, "time_step": 30}
    entity = service.entities(identity)
    # A challenge before the factor is verified: 403 / 60318.
    refused = twilio_error(
        lambda: entity.challenges.create(factor_sid=factor.sid, auth_payload=totp.now())
    )
    assert (refused.status, refused.code) == (403, 60318)

    still = entity.factors(factor.sid).update(auth_payload=_wrong(totp.now()))
    assert still.status == "unverified"
    verified = entity.factors(factor.sid).update(auth_payload=totp.now())
    assert verified.status == "verified"
    assert entity.factors(factor.sid).fetch().status == "verified"

    wrong = entity.challenges.create(factor_sid=factor.sid, auth_payload=_wrong(totp.now()))
    assert wrong.status == "pending"
    right = entity.challenges(wrong.sid).update(auth_payload=totp.now())
    assert (right.status, right.factor_sid) == ("approved", factor.sid)
    # Twilio does not refuse a code used before: twostep does (it is not the provider's rule).
    again = entity.challenges.create(factor_sid=factor.sid, auth_payload=totp.now())
    assert again.status == "approved"


def test_five_wrong_codes_use_up_a_factor_and_a_challenge(service: Any) -> None:
    identity = _identity()
    factor, totp = _new_factor(service, identity, config_code_length=8, config_time_step=60)
    assert factor.config["code_length"] == 8 and factor.config["time_step"] == 60
    entity = service.entities(identity)
    for _ in range(5):
        entity.factors(factor.sid).update(auth_payload=_wrong(totp.now()))
    used_up = twilio_error(lambda: entity.factors(factor.sid).update(auth_payload=totp.now()))
    assert (used_up.status, used_up.code) == (429, 60310)

    second, totp = _new_factor(service, identity)
    entity.factors(second.sid).update(auth_payload=totp.now())
    challenge = entity.challenges.create(factor_sid=second.sid)
    for _ in range(5):
        entity.challenges(challenge.sid).update(auth_payload=_wrong(totp.now()))
    capped = twilio_error(lambda: entity.challenges(challenge.sid).update(auth_payload=totp.now()))
    assert (capped.status, capped.code) == (429, 60308)


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"factor_type": "push"}, 60200),
        ({"config_time_step": 10}, 60200),
        ({"config_skew": 3}, 60200),
        ({"config_code_length": 9}, 60200),
    ],
)
def test_what_twilio_refuses_is_refused(service: Any, options: dict[str, Any], code: int) -> None:
    arguments = {"friendly_name": "ada", "factor_type": "totp", **options}
    error = twilio_error(lambda: service.entities(_identity()).new_factors.create(**arguments))
    assert (error.status, error.code) == (400, code)


def test_another_entitys_factor_is_not_found(service: Any) -> None:
    factor, _ = _new_factor(service, _identity())
    error = twilio_error(lambda: service.entities(_identity()).factors(factor.sid).fetch())
    assert (error.status, error.code) == (404, 20404)


@pytest.mark.parametrize(
    "identity",
    [
        "ada lovelace",  # a space: found by schemathesis, the answer's url was no URI
        "ünïcödé-user",
        "ada_lovelace",
        "ada.lovelace",
        "seven77",  # 7 characters
        "a" * 65,
    ],
)
def test_an_identity_twilio_would_refuse_is_refused(service: Any, identity: str) -> None:
    """8 to 64 dash-separated alphanumerics: an entity made of anything else would put a `url`
    that is no URI in every answer (Twilio's schema says ``format: uri``)."""
    create = service.entities(identity).new_factors.create
    error = twilio_error(lambda: create(friendly_name="ada", factor_type="totp"))
    assert (error.status, error.code) == (400, 60200)
    assert "Identity" in error.msg


@pytest.mark.parametrize("identity", ["12345678", "A" * 64, "User-0-ABC"])
def test_an_identity_of_twilios_alphabet_is_taken(service: Any, identity: str) -> None:
    factor, _ = _new_factor(service, identity)
    assert factor.identity == identity
    assert factor.url.endswith(f"/Entities/{identity}/Factors/{factor.sid}")
