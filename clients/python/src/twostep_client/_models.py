"""What the API answers, as typed, immutable values. Unknown fields are ignored (a newer server
may add some); a status word this client does not know is ``UnexpectedAnswer``, never passed on
as something the types say it cannot be."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Literal, TypeVar, get_args

from twostep_client._errors import UnexpectedAnswer

Channel = Literal["sms", "call", "whatsapp", "email", "totp", "passkey"]
VerificationStatus = Literal[
    "queued",
    "sending",
    "pending",
    "approved",
    "failed",
    "expired",
    "canceled",
    "max_attempts_reached",
]
CheckStatus = Literal["queued", "approved", "rejected", "expired", "max_attempts_reached", "failed"]
FactorStatus = Literal["unverified", "verified", "disabled"]
FactorType = Literal["phone", "email", "totp", "passkey"]
DisabledReason = Literal["removed", "replaced", "in_use"]
Purpose = Literal["standalone", "enrollment", "login"]

Json = dict[str, Any]
W = TypeVar("W", bound=str)

_CHANNELS: tuple[Channel, ...] = get_args(Channel)
_VERIFICATION_STATUSES: tuple[VerificationStatus, ...] = get_args(VerificationStatus)
_CHECK_STATUSES: tuple[CheckStatus, ...] = get_args(CheckStatus)
_FACTOR_STATUSES: tuple[FactorStatus, ...] = get_args(FactorStatus)
_DISABLED_REASONS: tuple[DisabledReason, ...] = get_args(DisabledReason)
_FACTOR_TYPES: tuple[FactorType, ...] = get_args(FactorType)
_PURPOSES: tuple[Purpose, ...] = get_args(Purpose)
_REDEMPTIONS: tuple[Literal["approved", "rejected"], ...] = ("approved", "rejected")

# A verification in these states is not decided yet: a wait continues through them.
_VERIFICATION_IN_FLIGHT = frozenset({"queued", "sending"})


def _word(value: object, words: tuple[W, ...]) -> W:
    for word in words:
        if value == word:
            return word
    raise UnexpectedAnswer(f"{value!r} is none of {', '.join(words)}: is the client too old?")


def _optional_word(value: object, words: tuple[W, ...]) -> W | None:
    return None if value is None else _word(value, words)


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _optional_object(value: Any) -> Json | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UnexpectedAnswer(f"{value!r} is not an object")
    return value


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class Failure:
    """Why a verification or a check ended badly: ``code`` is a stable word
    (``line_type_not_allowed``, ``sim_swap_detected``, ``superseded``, ``provider_unavailable``,
    …), ``provider_code`` Twilio's."""

    code: str
    message: str | None
    provider_code: int | None

    @classmethod
    def from_json(cls, body: Json | None) -> Failure | None:
        if body is None:
            return None
        return cls(
            code=str(body["code"]),
            message=_optional_str(body.get("message")),
            provider_code=_optional_int(body.get("provider_code")),
        )


@dataclass(frozen=True)
class Verification:
    id: str
    status: VerificationStatus
    channel: Channel
    to: str  # masked, e.g. +1415•••••23
    purpose: Purpose
    user_id: str | None
    send_attempts: int
    check_attempts: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    error: Failure | None
    # A passkey's, while pending: the WebAuthn options for the browser (``publicKey`` of
    # ``navigator.credentials.create()`` at enrolment, of ``.get()`` at login), as JSON.
    creation_options: Json | None = field(default=None, kw_only=True)
    request_options: Json | None = field(default=None, kw_only=True)

    @property
    def sent(self) -> bool:
        """The code is on its way and checks are taken."""
        return self.status == "pending"

    @property
    def in_flight(self) -> bool:
        """Not sent yet and not over: a worker still has it."""
        return self.status in _VERIFICATION_IN_FLIGHT

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @classmethod
    def from_json(cls, body: Json) -> Verification:
        return cls(
            id=str(body["id"]),
            status=_word(body["status"], _VERIFICATION_STATUSES),
            channel=_word(body["channel"], _CHANNELS),
            to=str(body["to"]),
            purpose=_word(body["purpose"], _PURPOSES),
            user_id=_optional_str(body.get("user_id")),
            send_attempts=int(body["send_attempts"]),
            check_attempts=int(body["check_attempts"]),
            created_at=_time(body["created_at"]),
            updated_at=_time(body["updated_at"]),
            expires_at=_optional_time(body.get("expires_at")),
            error=Failure.from_json(body.get("error")),
            creation_options=_optional_object(body.get("creation_options")),
            request_options=_optional_object(body.get("request_options")),
        )


@dataclass(frozen=True)
class Check:
    """One code handed over. ``approved`` is the only answer that lets a user in."""

    id: str
    verification_id: str
    status: CheckStatus
    created_at: datetime
    completed_at: datetime | None
    error: Failure | None

    @property
    def decided(self) -> bool:
        return self.status != "queued"

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @classmethod
    def from_json(cls, body: Json) -> Check:
        return cls(
            id=str(body["id"]),
            verification_id=str(body["verification_id"]),
            status=_word(body["status"], _CHECK_STATUSES),
            created_at=_time(body["created_at"]),
            completed_at=_optional_time(body.get("completed_at")),
            error=Failure.from_json(body.get("error")),
        )


@dataclass(frozen=True)
class Factor:
    """A user's phone, email address, authenticator app or passkey for two-step: ``verified``
    once its enrolment was approved. ``phone`` and ``email`` are masked, None but for a phone
    or an address; ``label`` is an app's or a passkey's name. A ``disabled`` factor says why in
    ``disabled_reason``: ``removed`` (by you), ``replaced`` (by a newer one of its kind) or
    ``in_use`` (its enrolment's code was approved, but the phone or address is verified for
    another of your users: tell the user it cannot be used, not why)."""

    id: str
    user_id: str
    phone: str | None
    channel: Channel
    status: FactorStatus
    created_at: datetime
    verified_at: datetime | None
    email: str | None = None
    type: FactorType = "phone"
    label: str | None = None
    disabled_reason: DisabledReason | None = None

    @classmethod
    def from_json(cls, body: Json) -> Factor:
        return cls(
            label=_optional_str(body.get("label")),
            type=_word(body.get("type", "phone"), _FACTOR_TYPES),
            id=str(body["id"]),
            user_id=str(body["user_id"]),
            phone=_optional_str(body.get("phone")),
            email=_optional_str(body.get("email")),
            channel=_word(body["channel"], _CHANNELS),
            status=_word(body["status"], _FACTOR_STATUSES),
            created_at=_time(body["created_at"]),
            verified_at=_optional_time(body.get("verified_at")),
            disabled_reason=_optional_word(body.get("disabled_reason"), _DISABLED_REASONS),
        )


@dataclass(frozen=True)
class Challenge(Verification):
    """A login challenge's verification, the factor it went to, and the user's other verified
    factors, preferred first: what the login page can offer instead (a new challenge naming
    one's ``id`` as ``factor_id``)."""

    factor_id: str
    alternatives: tuple[Factor, ...]

    @classmethod
    def from_json(cls, body: Json) -> Challenge:
        verification = Verification.from_json(body)
        return cls(
            **{field.name: getattr(verification, field.name) for field in fields(Verification)},
            factor_id=str(body["factor_id"]),
            alternatives=tuple(Factor.from_json(factor) for factor in body["alternatives"]),
        )


@dataclass(frozen=True)
class Enrollment:
    """A phone, address, authenticator app or passkey being enrolled: check a code (or the
    browser's credential) against ``verification`` to verify ``factor``. ``otpauth_uri``: an
    app's key URI (show it as a QR code), in this answer only; a passkey's options are
    ``verification.creation_options``."""

    factor: Factor
    verification: Verification
    otpauth_uri: str | None = None

    @classmethod
    def from_json(cls, body: Json) -> Enrollment:
        return cls(
            factor=Factor.from_json(body["factor"]),
            verification=Verification.from_json(body["verification"]),
            otpauth_uri=_optional_str(body.get("otpauth_uri")),
        )


@dataclass(frozen=True)
class Factors:
    user_id: str
    two_step_enabled: bool
    factors: tuple[Factor, ...]

    @property
    def verified(self) -> tuple[Factor, ...]:
        return tuple(factor for factor in self.factors if factor.status == "verified")

    @classmethod
    def from_json(cls, body: Json) -> Factors:
        return cls(
            user_id=str(body["user_id"]),
            two_step_enabled=bool(body["two_step_enabled"]),
            factors=tuple(Factor.from_json(factor) for factor in body["factors"]),
        )


@dataclass(frozen=True)
class Redemption:
    status: Literal["approved", "rejected"]

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    @classmethod
    def from_json(cls, body: Json) -> Redemption:
        return cls(status=_word(body["status"], _REDEMPTIONS))


@dataclass(frozen=True)
class Event:
    """One line of a user's security trail (``factor.verified``, ``user.locked``, …)."""

    id: int
    type: str
    occurred_at: datetime
    user_id: str | None
    api_key: str | None
    client_ip: str | None
    destination: str | None  # masked
    verification_id: str | None
    factor_id: str | None
    detail: Json

    @classmethod
    def from_json(cls, body: Json) -> Event:
        return cls(
            id=int(body["id"]),
            type=str(body["type"]),
            occurred_at=_time(body["occurred_at"]),
            user_id=_optional_str(body.get("user_id")),
            api_key=_optional_str(body.get("api_key")),
            client_ip=_optional_str(body.get("client_ip")),
            destination=_optional_str(body.get("destination")),
            verification_id=_optional_str(body.get("verification_id")),
            factor_id=_optional_str(body.get("factor_id")),
            detail=dict(body.get("detail") or {}),
        )


@dataclass(frozen=True)
class EventPage:
    """Newest first; pass ``next_before`` as ``before`` for the next, older page."""

    events: tuple[Event, ...]
    next_before: int | None

    @classmethod
    def from_json(cls, body: Json) -> EventPage:
        return cls(
            events=tuple(Event.from_json(event) for event in body["events"]),
            next_before=_optional_int(body.get("next_before")),
        )


def recovery_codes_from_json(body: Json) -> tuple[str, ...]:
    return tuple(str(code) for code in body["codes"])


@dataclass(frozen=True)
class SendLimit:
    name: str  # per_destination, per_user, …: what a RateLimited's ``limit`` names
    limit: str  # e.g. "5 per 10 minutes"
    applies_to: str


@dataclass(frozen=True)
class Lockout:
    failures_per_step: int
    wait_increment_seconds: float
    max_wait_seconds: float
    failure_reset_seconds: float
    hard_lock_after_failures: int


@dataclass(frozen=True)
class Limits:
    """The limits in force, for messages a user can act on ("ask again in 30 s")."""

    send_limits: tuple[SendLimit, ...]
    resend_cooldown_seconds: float
    allowed_countries: tuple[str, ...] | None  # None: every country
    checks_per_verification: int
    lockout: Lockout

    @classmethod
    def from_json(cls, body: Json) -> Limits:
        countries = body.get("allowed_countries")
        lockout = body["lockout"]
        return cls(
            send_limits=tuple(
                SendLimit(str(item["name"]), str(item["limit"]), str(item["applies_to"]))
                for item in body["send_limits"]
            ),
            resend_cooldown_seconds=float(body["resend_cooldown_seconds"]),
            allowed_countries=None if countries is None else tuple(map(str, countries)),
            checks_per_verification=int(body["checks_per_verification"]),
            lockout=Lockout(
                failures_per_step=int(lockout["failures_per_step"]),
                wait_increment_seconds=float(lockout["wait_increment_seconds"]),
                max_wait_seconds=float(lockout["max_wait_seconds"]),
                failure_reset_seconds=float(lockout["failure_reset_seconds"]),
                hard_lock_after_failures=int(lockout["hard_lock_after_failures"]),
            ),
        )
