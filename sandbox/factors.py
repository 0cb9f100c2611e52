"""Twilio Verify's Factors API for ``totp``, in memory: an entity's factors, verified by a first
right code, and challenges checked with a code (``AuthPayload``). Codes are RFC 6238's, computed
by ``pyotp`` on the sandbox's clock with the factor's time step, code length, algorithm and skew.

Twilio's rules (https://www.twilio.com/docs/verify/quickstarts/totp, /docs/verify/api/entity and
the error pages): an entity's identity is 8 to 64 dash-separated alphanumerics, anything else is
400 / 60200 where a factor would make the entity; a factor is ``unverified`` until a right code;
5 wrong codes on a factor are 429 / 60310 and on a challenge 429 / 60308; a challenge to an
unverified factor is 403 / 60318; a challenge lives 5 minutes (``ExpirationDate`` is not
honoured). Twilio does not refuse a code used before (choice, as Twilio: a replay within the
code's validity is approved again; twostep refuses it).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import pyotp

from sandbox.common import Clock, TwilioError, format_time, invalid, is_sid, new_sid, not_found
from sandbox.services import Service

MAX_WRONG_CODES = 5
CHALLENGE_LIFETIME = timedelta(minutes=5)
# Twilio's defaults where neither the factor nor the service says (the service's `totp.*`).
DEFAULT_CONFIG = {"alg": "sha1", "skew": 1, "code_length": 6, "time_step": 30}
_ALGORITHMS = ("sha1", "sha256", "sha512")
_RANGES = {"time_step": (20, 60), "skew": (0, 2), "code_length": (3, 8)}
# ASCII letters, digits and dashes (where Twilio allows a dash is not documented: anywhere here),
# so an identity is also always safe, unescaped, in the ``url`` of the answers (``format: uri``).
IDENTITY = re.compile(r"[A-Za-z0-9-]{8,64}")


@dataclass
class Factor:
    sid: str
    service_sid: str
    account_sid: str
    entity_sid: str
    identity: str
    friendly_name: str
    secret: str = field(repr=False)
    config: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    status: str = "unverified"
    wrong_codes: int = 0

    def totp(self) -> pyotp.TOTP:
        config = self.config
        return pyotp.TOTP(
            self.secret,
            digits=int(config["code_length"]),
            interval=int(config["time_step"]),
            digest=config["alg"],
        )

    def accepts(self, code: str, at: datetime) -> bool:
        return self.totp().verify(code, for_time=at, valid_window=int(self.config["skew"]))


@dataclass
class Challenge:
    sid: str
    factor: Factor
    created_at: datetime
    expires_at: datetime
    status: str = "pending"
    responded_at: datetime | None = None
    wrong_codes: int = 0


class Factors:
    """Every service's entities, TOTP factors and challenges."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._factors: dict[str, Factor] = {}
        self._challenges: dict[str, Challenge] = {}
        self.entities: dict[tuple[str, str], str] = {}  # (service, identity) -> YE sid

    def reset(self) -> None:
        self._factors.clear()
        self._challenges.clear()
        self.entities.clear()

    def create(self, service: Service, identity: str, form: dict[str, str]) -> Factor:
        name, kind = form.get("FriendlyName"), form.get("FactorType")
        if not name:
            raise TwilioError(
                400, 20001, "Missing required parameter FriendlyName in the post body"
            )
        if not kind:
            raise TwilioError(400, 20001, "Missing required parameter FactorType in the post body")
        if kind != "totp":
            raise invalid("FactorType")
        if len(name) > 64:
            raise invalid("FriendlyName")
        if not IDENTITY.fullmatch(identity):
            raise invalid("Identity")
        now = self.clock.now()
        entity = self.entities.setdefault((service.sid, identity), new_sid("YE"))
        factor = Factor(
            sid=new_sid("YF"),
            service_sid=service.sid,
            account_sid=service.account_sid,
            entity_sid=entity,
            identity=identity,
            friendly_name=name,
            secret=_secret(form.get("Binding.Secret")),
            config=_config(service, form),
            created_at=now,
            updated_at=now,
        )
        self._factors[factor.sid] = factor
        return factor

    def factor(self, service: Service, identity: str, sid: str, resource: str) -> Factor:
        factor = self._factors.get(sid)
        if factor is None or (factor.service_sid, factor.identity) != (service.sid, identity):
            raise not_found(resource)
        return factor

    def delete(self, factor: Factor) -> None:
        del self._factors[factor.sid]

    def verify(self, factor: Factor, code: str | None) -> Factor:
        """The first right code verifies the factor; a wrong one leaves it unverified."""
        if code is None or factor.status == "verified":
            return factor
        if factor.wrong_codes >= MAX_WRONG_CODES:
            raise TwilioError(429, 60310, "Factor verification attempts reached")
        now = self.clock.now()
        if factor.accepts(code, now):
            factor.status = "verified"
        else:
            factor.wrong_codes += 1
        factor.updated_at = now
        return factor

    def challenge(self, service: Service, identity: str, form: dict[str, str]) -> Challenge:
        sid = form.get("FactorSid")
        if not sid:
            raise TwilioError(400, 20001, "Missing required parameter FactorSid in the post body")
        if not is_sid(sid, "YF"):
            raise invalid("FactorSid")
        resource = f"/Services/{service.sid}/Entities/{identity}/Factors/{sid}"
        factor = self.factor(service, identity, sid, resource)
        if factor.status != "verified":
            raise TwilioError(403, 60318, "Factor is unverified")
        now = self.clock.now()
        challenge = Challenge(new_sid("YC"), factor, now, now + CHALLENGE_LIFETIME)
        self._challenges[challenge.sid] = challenge
        code = form.get("AuthPayload")
        return self.respond(challenge, code) if code is not None else challenge

    def find_challenge(self, service: Service, identity: str, sid: str, resource: str) -> Challenge:
        challenge = self._challenges.get(sid)
        factor = challenge.factor if challenge else None
        if factor is None or (factor.service_sid, factor.identity) != (service.sid, identity):
            raise not_found(resource)
        assert challenge is not None
        return self._expired(challenge)

    def respond(self, challenge: Challenge, code: str | None) -> Challenge:
        challenge = self._expired(challenge)
        if code is None or challenge.status != "pending":
            return challenge
        if challenge.wrong_codes >= MAX_WRONG_CODES:
            raise TwilioError(429, 60308, "Challenge verification attempts limit reached")
        now = self.clock.now()
        if challenge.factor.accepts(code, now):
            challenge.status, challenge.responded_at = "approved", now
        else:
            challenge.wrong_codes += 1
        return challenge

    def _expired(self, challenge: Challenge) -> Challenge:
        if challenge.status == "pending" and self.clock.now() >= challenge.expires_at:
            challenge.status = "expired"
        return challenge


def _secret(given: str | None) -> str:
    if given is None:
        return pyotp.random_base32()
    try:
        base64.b32decode(given.upper() + "=" * (-len(given) % 8))
    except (binascii.Error, ValueError):
        raise invalid("Binding.Secret") from None
    return given.upper()


def _config(service: Service, form: dict[str, str]) -> dict[str, Any]:
    """The factor's own settings, else the service's ``totp.*``, else Twilio's defaults."""
    config = dict(DEFAULT_CONFIG)
    config.update({k: v for k, v in service.settings["totp"].items() if k in config and v})
    for name, (low, high) in _RANGES.items():
        raw = form.get("Config." + "".join(part.title() for part in name.split("_")))
        if raw is None:
            continue
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise invalid(f"Config.{name}")
        config[name] = int(raw)
    alg = form.get("Config.Alg")
    if alg is not None:
        if alg not in _ALGORITHMS:
            raise invalid("Config.Alg")
        config["alg"] = alg
    return config


def binding_uri(factor: Factor, service: Service) -> str:
    """Google Authenticator's key URI: the factor's name as the account, the service's
    ``totp.issuer`` (else its name) as the issuer."""
    issuer = service.settings["totp"].get("issuer") or service.friendly_name
    config = factor.config
    query = urlencode(
        {
            "secret": factor.secret,
            "issuer": issuer,
            "algorithm": config["alg"].upper(),
            "digits": config["code_length"],
            "period": config["time_step"],
        }
    )
    return f"otpauth://totp/{quote(issuer)}:{quote(factor.friendly_name)}?{query}"


def factor_json(factor: Factor, base_url: str, *, binding: str | None = None) -> dict[str, Any]:
    """``binding``: the key URI, only in a create's answer (Twilio shows the secret once)."""
    body: dict[str, Any] = {
        "sid": factor.sid,
        "account_sid": factor.account_sid,
        "service_sid": factor.service_sid,
        "entity_sid": factor.entity_sid,
        "identity": factor.identity,
        "date_created": format_time(factor.created_at),
        "date_updated": format_time(factor.updated_at),
        "friendly_name": factor.friendly_name,
        "status": factor.status,
        "factor_type": "totp",
        "config": factor.config,
        "metadata": None,
        "url": f"{base_url}/v2/Services/{factor.service_sid}/Entities/{factor.identity}"
        f"/Factors/{factor.sid}",
    }
    if binding is not None:
        body["binding"] = {"secret": factor.secret, "uri": binding}
        body["options"] = None
    return body


def challenge_json(challenge: Challenge, base_url: str) -> dict[str, Any]:
    factor = challenge.factor
    url = f"{base_url}/v2/Services/{factor.service_sid}/Entities/{factor.identity}/Challenges"
    return {
        "sid": challenge.sid,
        "account_sid": factor.account_sid,
        "service_sid": factor.service_sid,
        "entity_sid": factor.entity_sid,
        "identity": factor.identity,
        "factor_sid": factor.sid,
        "date_created": format_time(challenge.created_at),
        "date_updated": format_time(challenge.responded_at or challenge.created_at),
        "date_responded": format_time(challenge.responded_at) if challenge.responded_at else None,
        "expiration_date": format_time(challenge.expires_at),
        "status": challenge.status,
        "responded_reason": "none",
        "details": None,
        "hidden_details": None,
        "metadata": None,
        "factor_type": "totp",
        "url": f"{url}/{challenge.sid}",
        "links": {"notifications": f"{url}/{challenge.sid}/Notifications"},
    }
