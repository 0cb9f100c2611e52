"""Twilio Verify Passkeys, in memory, with WebAuthn verified for real by ``webauthn``
(py_webauthn): a factor's creation options, the browser's attestation, a challenge's request
options and the browser's assertion — origin, relying party id, challenge, user presence and
verification, signature and signature counter all checked.

Twilio's rules (https://www.twilio.com/docs/verify/quickstarts/passkeys and its error pages):
the relying party and the authenticator criteria come from the factor's ``config``, else from
the service's ``Passkeys.*`` settings (400 / 60371 without a relying party, 400 / 60393 without
criteria); a challenge needs the service's own passkeys configuration (400 / 60394); an
attestation that does not verify is 403 / 60311 and the factor stays ``unverified``; an
assertion without ``authenticatorData`` is 400 / 60379, without ``signature`` 400 / 60381, and
one that does not verify 403 / 60324. Neither request names its factor or challenge: both are
found by the challenge the browser signed (``clientDataJSON``).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorAttachment,
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from sandbox.common import Clock, TwilioError, new_sid
from sandbox.factors import IDENTITY
from sandbox.services import Service

CHALLENGE_LIFETIME = timedelta(minutes=5)
_CRITERIA = ("authenticator_attachment", "discoverable_credentials", "user_verification")


@dataclass
class RelyingParty:
    id: str
    name: str
    origins: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "origins": self.origins}


@dataclass
class PasskeyFactor:
    sid: str
    service_sid: str
    account_sid: str
    entity_sid: str
    identity: str
    friendly_name: str
    relying_party: RelyingParty
    criteria: dict[str, str]
    challenge: bytes  # the registration's, until the attestation verifies it
    created_at: datetime
    updated_at: datetime
    status: str = "unverified"
    credential_id: bytes | None = None
    public_key: bytes | None = None
    sign_count: int = 0

    @property
    def user_verification_required(self) -> bool:
        return self.criteria["user_verification"] == "required"


@dataclass
class PasskeyChallenge:
    sid: str
    service: Service
    entity_sid: str
    identity: str
    relying_party: RelyingParty
    allowed: list[PasskeyFactor]
    challenge: bytes
    created_at: datetime
    expires_at: datetime
    status: str = "pending"
    factor: PasskeyFactor | None = None  # the one that signed, once approved
    responded_at: datetime | None = None
    options: str = "{}"  # the request options (JSON), in every answer about it

    @property
    def service_sid(self) -> str:
        return self.service.sid


class Passkeys:
    """Every service's passkey factors and challenges."""

    def __init__(self, clock: Clock, entities: dict[tuple[str, str], str]) -> None:
        self.clock = clock
        self._entities = entities  # (service, identity) -> YE sid, shared with TOTP factors
        self._factors: dict[str, PasskeyFactor] = {}
        self._challenges: dict[str, PasskeyChallenge] = {}

    def reset(self) -> None:
        self._factors.clear()
        self._challenges.clear()

    def create_factor(self, service: Service, body: dict[str, Any]) -> tuple[PasskeyFactor, str]:
        """A new unverified factor and its creation options (JSON, for the browser)."""
        name, identity = body.get("friendly_name"), body.get("identity")
        if not isinstance(name, str) or not name or len(name) > 64:
            raise _missing("friendly_name")
        if not isinstance(identity, str) or not IDENTITY.fullmatch(identity):
            raise TwilioError(400, 60200, "Invalid parameter: identity")
        config = _object(body.get("config"))
        relying_party = _relying_party(config.get("relying_party"), service)
        criteria = _criteria(config, service)
        now = self.clock.now()
        entity = self._entities.setdefault((service.sid, identity), new_sid("YE"))
        factor = PasskeyFactor(
            sid=new_sid("YF"),
            service_sid=service.sid,
            account_sid=service.account_sid,
            entity_sid=entity,
            identity=identity,
            friendly_name=name,
            relying_party=relying_party,
            criteria=criteria,
            challenge=secrets.token_bytes(32),
            created_at=now,
            updated_at=now,
        )
        self._factors[factor.sid] = factor
        return factor, _creation_options(factor, self._credentials_of(service, entity))

    def verify_factor(self, service: Service, body: dict[str, Any]) -> PasskeyFactor:
        """The browser's attestation: the factor it answers turns ``verified``."""
        challenge = _signed_challenge(body)
        factor = next(
            (
                f
                for f in self._factors.values()
                if (f.service_sid, f.challenge) == (service.sid, challenge)
            ),
            None,
        )
        if factor is None or factor.status == "verified":
            raise _factor_failed("no factor waits for this attestation's challenge")
        try:
            verified = verify_registration_response(
                credential=body,
                expected_challenge=factor.challenge,
                expected_rp_id=factor.relying_party.id,
                expected_origin=factor.relying_party.origins,
                require_user_verification=factor.user_verification_required,
            )
        except (InvalidRegistrationResponse, ValueError, KeyError, TypeError) as exc:
            raise _factor_failed(str(exc)) from exc
        factor.status, factor.updated_at = "verified", self.clock.now()
        factor.credential_id = verified.credential_id
        factor.public_key = verified.credential_public_key
        factor.sign_count = verified.sign_count
        return factor

    def create_challenge(self, service: Service, body: dict[str, Any]) -> PasskeyChallenge:
        """A challenge to the entity's verified passkeys (``factor_sid``: that one only)."""
        relying_party = _service_relying_party(service)
        identity = body.get("identity")
        if not isinstance(identity, str) or (service.sid, identity) not in self._entities:
            raise TwilioError(404, 20404, "The requested resource Entity was not found")
        entity = self._entities[(service.sid, identity)]
        allowed = [
            f
            for f in self._credentials_of(service, entity)
            if body.get("factor_sid") in (None, f.sid)
        ]
        if not allowed:
            raise TwilioError(403, 60318, "Factor is not verified")
        now = self.clock.now()
        challenge = PasskeyChallenge(
            sid=new_sid("YC"),
            service=service,
            entity_sid=entity,
            identity=identity,
            relying_party=relying_party,
            allowed=allowed,
            challenge=secrets.token_bytes(32),
            created_at=now,
            expires_at=now + CHALLENGE_LIFETIME,
        )
        challenge.options = _request_options(challenge, service)
        self._challenges[challenge.sid] = challenge
        return challenge

    def approve(self, service: Service, body: dict[str, Any]) -> PasskeyChallenge:
        """The browser's assertion: the challenge it signed is approved, or refused."""
        response = _object(body.get("response"))
        if not response.get("authenticatorData"):
            raise TwilioError(400, 60379, "Authenticator data invalid or not provided")
        if not response.get("signature"):
            raise TwilioError(400, 60381, "Signature invalid or not provided")
        signed = _signed_challenge(body)
        challenge = next(
            (
                c
                for c in self._challenges.values()
                if (c.service.sid, c.challenge) == (service.sid, signed)
            ),
            None,
        )
        now = self.clock.now()
        if challenge is None or challenge.status != "pending" or now >= challenge.expires_at:
            raise _challenge_failed("no pending challenge for this assertion")
        factor = _signing_factor(challenge, body)
        try:
            verified = verify_authentication_response(
                credential=body,
                expected_challenge=challenge.challenge,
                expected_rp_id=challenge.relying_party.id,
                expected_origin=challenge.relying_party.origins,
                credential_public_key=factor.public_key or b"",
                credential_current_sign_count=factor.sign_count,
                require_user_verification=factor.user_verification_required,
            )
        except (InvalidAuthenticationResponse, ValueError, KeyError, TypeError) as exc:
            raise _challenge_failed(str(exc)) from exc
        factor.sign_count = verified.new_sign_count
        challenge.status, challenge.factor, challenge.responded_at = "approved", factor, now
        return challenge

    def _credentials_of(self, service: Service, entity: str) -> list[PasskeyFactor]:
        return [
            f
            for f in self._factors.values()
            if (f.service_sid, f.entity_sid, f.status) == (service.sid, entity, "verified")
        ]


class _Signable(Protocol):
    service_sid: str
    challenge: bytes


S = TypeVar("S", bound=_Signable)


def _signed_for(items: Iterable[S], service: Service, challenge: bytes) -> S | None:
    """The factor or challenge of ``service`` whose challenge the browser signed."""
    return next(
        (i for i in items if (i.service_sid, i.challenge) == (service.sid, challenge)), None
    )


def _signing_factor(challenge: PasskeyChallenge, body: dict[str, Any]) -> PasskeyFactor:
    raw_id = body.get("rawId") or body.get("id")
    try:
        credential_id = base64url_to_bytes(str(raw_id))
    except ValueError as exc:
        raise _challenge_failed("rawId is not base64url") from exc
    for factor in challenge.allowed:
        if factor.credential_id == credential_id and factor.status == "verified":
            return factor
    raise _challenge_failed("the credential is not one of the challenge's")


def _signed_challenge(body: dict[str, Any]) -> bytes:
    """The challenge the browser signed, read from ``response.clientDataJSON``."""
    response = _object(body.get("response"))
    try:
        client_data = json.loads(base64url_to_bytes(str(response["clientDataJSON"])))
        return base64url_to_bytes(str(client_data["challenge"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise TwilioError(400, 60200, "Invalid parameter: response.clientDataJSON") from exc


def _relying_party(requested: Any, service: Service) -> RelyingParty:
    asked = _object(requested)
    configured = service.settings["passkeys"]["relying_party"]
    rp_id = asked.get("id") or configured.get("id")
    origins = asked.get("origins") or configured.get("origins")
    if not isinstance(rp_id, str) or not rp_id or "/" in rp_id or ":" in rp_id:
        raise TwilioError(400, 60371, "Relying party invalid or not provided")
    if (
        not isinstance(origins, list)
        or not origins
        or not all(
            isinstance(origin, str) and origin.startswith(("https://", "http://"))
            for origin in origins
        )
    ):
        raise TwilioError(400, 60371, "Relying party invalid or not provided")
    name = asked.get("name") or configured.get("name") or rp_id
    return RelyingParty(rp_id, str(name), list(origins))


def _service_relying_party(service: Service) -> RelyingParty:
    configured = service.settings["passkeys"]["relying_party"]
    if not configured.get("id") or not configured.get("origins"):
        raise TwilioError(400, 60394, "Service passkeys configuration is missing")
    return _relying_party(None, service)


def _criteria(config: dict[str, Any], service: Service) -> dict[str, str]:
    configured = service.settings["passkeys"]
    criteria = {name: config.get(name) or configured.get(name) for name in _CRITERIA}
    missing = [name for name, value in criteria.items() if not value]
    if missing:
        raise TwilioError(
            400, 60393, f"Authenticator criteria are missing from the request: {', '.join(missing)}"
        )
    return {name: str(value) for name, value in criteria.items()}


def _creation_options(factor: PasskeyFactor, existing: list[PasskeyFactor]) -> str:
    criteria = factor.criteria
    attachment = criteria["authenticator_attachment"]
    options = generate_registration_options(
        rp_id=factor.relying_party.id,
        rp_name=factor.relying_party.name,
        user_id=factor.entity_sid.encode(),
        user_name=factor.identity,
        user_display_name=factor.friendly_name,
        challenge=factor.challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            authenticator_attachment=(
                None if attachment == "any" else AuthenticatorAttachment(attachment)
            ),
            resident_key=ResidentKeyRequirement(criteria["discoverable_credentials"]),
            user_verification=UserVerificationRequirement(criteria["user_verification"]),
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=f.credential_id)
            for f in existing
            if f.credential_id is not None
        ],
    )
    return options_to_json(options)


def _request_options(challenge: PasskeyChallenge, service: Service) -> str:
    verification = service.settings["passkeys"].get("user_verification") or "preferred"
    options = generate_authentication_options(
        rp_id=challenge.relying_party.id,
        challenge=challenge.challenge,
        allow_credentials=[
            PublicKeyCredentialDescriptor(id=f.credential_id)
            for f in challenge.allowed
            if f.credential_id is not None
        ],
        user_verification=UserVerificationRequirement(verification),
    )
    return options_to_json(options)


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _missing(parameter: str) -> TwilioError:
    return TwilioError(400, 20001, f"Missing required parameter {parameter} in the post body")


def _factor_failed(reason: str) -> TwilioError:
    return TwilioError(403, 60311, f"Factor verification failed: {reason}")


def _challenge_failed(reason: str) -> TwilioError:
    return TwilioError(403, 60324, f"Challenge verification failed: {reason}")
