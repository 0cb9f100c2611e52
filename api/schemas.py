"""What goes over the wire. Phone numbers and email addresses leave only masked."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from ipaddress import IPv4Address, IPv6Address
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
)

from shared.audit.domain import EventType
from shared.audit.models import Event
from shared.kit.phone import E164_PATTERN
from shared.two_step.users import USER_ID_PATTERN, is_user_id
from shared.two_step.views import FactorOut as FactorOut
from shared.verifications.domain import Channel
from shared.verifications.views import CheckOut as CheckOut
from shared.verifications.views import ErrorOut as ErrorOut
from shared.verifications.views import VerificationOut as VerificationOut

_USER_ID_DOC = (
    "The login server's id for the user: 1 to 128 printable characters (no control, format, "
    "line-break, non-ASCII space or private-use character)"
)
# Checked by the validator below, with a message a person can read; the document shows it.
_USER_ID_SCHEMA: dict[str, Any] = {"pattern": USER_ID_PATTERN}


def _printable(value: str) -> str:
    if not is_user_id(value):
        raise ValueError(
            "must be printable: no control, format, line-break, non-ASCII space or private-use "
            "characters"
        )
    return value


# One type for a user id wherever it comes from, so the path and the body agree.
UserId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128),
    AfterValidator(_printable),
    Field(description=_USER_ID_DOC, json_schema_extra=_USER_ID_SCHEMA),
]
UserIdPath = Annotated[
    str,
    Path(min_length=1, max_length=128, description=_USER_ID_DOC, json_schema_extra=_USER_ID_SCHEMA),
    AfterValidator(_printable),
]
# A phone number as the API takes it: E.164 exactly. One that has the shape but no country's
# numbering plan allows is refused by the phone library, as invalid_phone_number too.
Phone = Annotated[
    str,
    Field(
        pattern=E164_PATTERN,
        examples=["+14155550123"],
        description="The phone, in E.164: a + and up to 15 digits, no spaces",
    ),
]
# Validated and normalised by the core (email-validator), as invalid_email_address.
Email = Annotated[
    str,
    Field(
        min_length=3,
        max_length=254,
        examples=["ada@example.com"],
        description="An email address",
        json_schema_extra={"format": "email"},
    ),
]
_E164_SHAPE = re.compile(E164_PATTERN)


def _e164_unless_email(value: str) -> str:
    # The channel says which it must be; the core checks that. Here: a phone's shape, exactly.
    if "@" not in value and not _E164_SHAPE.fullmatch(value):
        raise ValueError(
            "a phone number in E.164 (a + and up to 15 digits, no spaces, e.g. +14155550123), "
            "or an email address for channel email"
        )
    return value


def _phone_or_email_schema(schema: dict[str, Any]) -> None:
    schema.pop("maxLength", None)
    schema["anyOf"] = [
        {"pattern": E164_PATTERN},
        {"format": "email", "maxLength": 254, "minLength": 3},
    ]


PhoneOrEmail = Annotated[
    str,
    Field(
        max_length=254,
        examples=["+14155550123", "ada@example.com"],
        description="A phone number in E.164 (channels sms, call, whatsapp) or an email "
        "address (channel email)",
        json_schema_extra=_phone_or_email_schema,
    ),
    AfterValidator(_e164_unless_email),
]


def _to_fits_channel(schema: dict[str, Any]) -> None:
    # What the server checks, in the document: an address for channel email, else a phone.
    schema["if"] = {"properties": {"channel": {"const": "email"}}, "required": ["channel"]}
    schema["then"] = {"properties": {"to": {"format": "email"}}}
    schema["else"] = {"properties": {"to": {"pattern": E164_PATTERN}}}


# The channels a code is sent by (an authenticator app's, totp, comes from a challenge).
SendingChannel = Literal["sms", "call", "whatsapp", "email"]


class VerificationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_to_fits_channel)

    to: PhoneOrEmail
    channel: SendingChannel = "sms"
    locale: str | None = Field(default=None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,4})?$")
    user_id: UserId | None = None
    client_ip: IPv4Address | IPv6Address | None = Field(
        default=None, description="The end user's IP address, for rate limits and the audit"
    )


class ResendCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: SendingChannel | None = Field(
        default=None, description="Send the same code again on this channel (e.g. by call)"
    )


class PublicKeyCredentialIn(BaseModel):
    """The browser's answer to a passkey's options: the `PublicKeyCredential` as JSON (its
    `toJSON()`), binary fields base64url. Twilio verifies it; twostep only carries it."""

    # What else a browser adds is left out: Twilio reads only these.
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=1024)
    rawId: str = Field(min_length=1, max_length=1024)
    type: Literal["public-key"]
    # Strings (base64url), a list of them (transports) or null (userHandle): nothing deeper.
    response: dict[str, str | list[str] | None]
    authenticatorAttachment: str | None = None
    clientExtensionResults: dict[str, bool | str | int | dict[str, bool | str | int]] = Field(
        default_factory=dict
    )


# 4 to 10 letters or digits, each but the last maybe followed by one space or dash.
CODE_PATTERN = r"^(?:[0-9A-Za-z][ -]?){3,9}[0-9A-Za-z]$"


class CodeCheckCreate(BaseModel):
    """A code the user typed."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        pattern=CODE_PATTERN,
        examples=["123456", "123 456"],
        description="The code the user typed: 4 to 10 letters or digits (Twilio Verify's codes "
        "are 4 to 10 digits); a space or a dash between two of them is left out, as users type "
        "them",
    )


class CredentialCheckCreate(BaseModel):
    """A passkey's answer: the browser's credential (an attestation at enrolment, an assertion
    at login)."""

    model_config = ConfigDict(extra="forbid")

    credential: PublicKeyCredentialIn


def _check_kind(body: Any) -> str:
    return "passkey check" if isinstance(body, dict) and "credential" in body else "code check"


CheckCreate = Annotated[
    Annotated[CodeCheckCreate, Tag("code check")]
    | Annotated[CredentialCheckCreate, Tag("passkey check")],
    Discriminator(_check_kind),
]


class SendLimitOut(BaseModel):
    name: str
    limit: str
    applies_to: str


class LockoutOut(BaseModel):
    failures_per_step: int
    wait_increment_seconds: float
    max_wait_seconds: float
    failure_reset_seconds: float
    hard_lock_after_failures: int


class LimitsOut(BaseModel):
    send_limits: list[SendLimitOut]
    resend_cooldown_seconds: float
    allowed_countries: list[str] | None = Field(description="null: every country")
    country_daily_caps: dict[str, int]
    checks_per_verification: int
    lockout: LockoutOut
    provider_rate_per_second: float
    provider_burst: int


class _FactorCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replace_existing: bool = Field(
        default=True,
        description="Once this phone (address) is verified, disable the user's other verified "
        "phones (addresses): a phone change. They stay in force until then.",
    )
    client_ip: IPv4Address | IPv6Address | None = None


class PhoneFactorCreate(_FactorCreate):
    """A phone: its codes by sms (the default), call or whatsapp."""

    phone: Phone
    channel: Literal["sms", "call", "whatsapp"] = "sms"


class EmailFactorCreate(_FactorCreate):
    """An email address: its codes by email."""

    email: Email
    channel: Literal["email"] = "email"


class _AuthenticatorFactorCreate(_FactorCreate):
    label: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="The account name the app, the browser or the authenticator shows beside "
        "your tenant's name; default: the user id",
    )


class AppFactorCreate(_AuthenticatorFactorCreate):
    """An authenticator app (TOTP): the answer carries its `otpauth_uri` once."""

    type: Literal["totp"]


class PasskeyFactorCreate(_AuthenticatorFactorCreate):
    """A passkey (WebAuthn): its verification carries the browser's `creation_options` once
    `pending` (`GET /v1/verifications/{id}?wait=10`); the browser's credential, as a check,
    verifies it. The tenant's relying party must be set (`twostep tenants passkeys`)."""

    type: Literal["passkey"]
    replace_existing: bool = Field(
        default=False,
        description="Once verified, disable the user's other passkeys; by default a user keeps "
        "one per device",
    )


# Which of a union's kinds a body was taken for: pydantic puts it in an error's location, where
# ``api.errors`` leaves it out (the field is the body's own, e.g. "phone").
UNION_TAGS = frozenset(
    {"phone factor", "email factor", "app factor", "passkey factor", "code check", "passkey check"}
)


def _factor_kind(body: Any) -> str:
    if isinstance(body, dict) and "type" in body:
        return "passkey factor" if body["type"] == "passkey" else "app factor"
    return "email factor" if isinstance(body, dict) and "email" in body else "phone factor"


FactorCreate = Annotated[
    Annotated[PhoneFactorCreate, Tag("phone factor")]
    | Annotated[EmailFactorCreate, Tag("email factor")]
    | Annotated[AppFactorCreate, Tag("app factor")]
    | Annotated[PasskeyFactorCreate, Tag("passkey factor")],
    Discriminator(_factor_kind),
]


class FactorEnrollmentOut(BaseModel):
    factor: FactorOut
    verification: VerificationOut
    otpauth_uri: str | None = Field(
        default=None,
        description="An authenticator app's key URI (show it as a QR code), in this answer "
        "only: twostep keeps no copy. Null for a phone or an address",
    )


class FactorsOut(BaseModel):
    user_id: str
    two_step_enabled: bool
    factors: list[FactorOut]


class ChallengeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    factor_id: uuid.UUID | None = Field(
        default=None, description="Which verified factor; default: the latest verified"
    )
    channel: Channel | None = Field(
        default=None,
        description="Default: the factor's channel; another that reaches it (a phone's call or "
        "whatsapp instead of sms)",
    )
    client_ip: IPv4Address | IPv6Address | None = None


class RecoveryCodesOut(BaseModel):
    codes: list[str] = Field(description="Shown once; only their hashes are kept")


class RedeemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=32, examples=["7K2PQ-M9XD4"])
    client_ip: IPv4Address | IPv6Address | None = None


def _one_or_both(schema: dict[str, Any]) -> None:
    # A null is taken as absent, but the document asks for values, so that {} and
    # {"user_id": null} are as invalid there as they are here (422).
    schema["minProperties"] = 1
    for name, field in schema["properties"].items():
        kinds = [kind for kind in field.pop("anyOf") if kind != {"type": "null"}]
        value = kinds[0] if len(kinds) == 1 else {"anyOf": kinds}
        field.pop("default", None)
        schema["properties"][name] = {**field, **value}


class LockoutRelease(BaseModel):
    """A user, a phone number or an email address, a client address, or several: at least one
    of them."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_or_both)

    user_id: UserId | None = None
    phone: Phone | None = None
    email: Email | None = None
    client_ip: IPv4Address | IPv6Address | None = None


class RedeemOut(BaseModel):
    status: Literal["approved", "rejected"]


class EventOut(BaseModel):
    id: int
    type: EventType
    occurred_at: datetime
    user_id: str | None
    api_key: str | None = Field(description="The name of the API key whose request caused it")
    client_ip: str | None
    destination: str | None = Field(description="Masked")
    verification_id: uuid.UUID | None
    factor_id: uuid.UUID | None
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: Event, api_key_name: str | None) -> EventOut:
        return cls(
            id=row.id,
            type=row.type,
            occurred_at=row.occurred_at,
            user_id=row.user_id,
            api_key=api_key_name,
            client_ip=row.client_ip,
            destination=row.destination,
            verification_id=row.verification_id,
            factor_id=row.factor_id,
            detail=row.detail,
        )


class EventsOut(BaseModel):
    events: list[EventOut]
    next_before: int | None = Field(description="Pass as ?before= for the next, older page")
