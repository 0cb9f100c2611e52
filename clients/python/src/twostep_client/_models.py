"""What the API answers, as typed, immutable values. Unknown fields are ignored and unknown
status words kept as they come, so an older client keeps working against a newer server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

Channel = Literal["sms", "call"]
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
Purpose = Literal["standalone", "enrollment", "login"]

Json = dict[str, Any]

# A verification in these states is not decided yet: a wait continues through them.
_VERIFICATION_IN_FLIGHT = frozenset({"queued", "sending"})


def _time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value))


def _optional_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


@dataclass(frozen=True)
class Failure:
    """Why a verification or a check ended badly: ``code`` is a stable word
    (``landline_not_supported``, ``provider_unavailable``, …), ``provider_code`` Twilio's."""

    code: str
    message: str | None
    provider_code: int | None

    @classmethod
    def from_json(cls, body: Json | None) -> Failure | None:
        if body is None:
            return None
        return cls(
            code=str(body["code"]),
            message=body.get("message"),
            provider_code=body.get("provider_code"),
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
            status=body["status"],
            channel=body["channel"],
            to=str(body["to"]),
            purpose=body["purpose"],
            user_id=body.get("user_id"),
            send_attempts=int(body["send_attempts"]),
            check_attempts=int(body["check_attempts"]),
            created_at=_time(body["created_at"]),
            updated_at=_time(body["updated_at"]),
            expires_at=_optional_time(body.get("expires_at")),
            error=Failure.from_json(body.get("error")),
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
            status=body["status"],
            created_at=_time(body["created_at"]),
            completed_at=_optional_time(body.get("completed_at")),
            error=Failure.from_json(body.get("error")),
        )


@dataclass(frozen=True)
class Factor:
    """A user's phone for two-step: ``verified`` once its enrolment code was approved."""

    id: str
    user_id: str
    phone: str  # masked
    channel: Channel
    status: FactorStatus
    created_at: datetime
    verified_at: datetime | None

    @classmethod
    def from_json(cls, body: Json) -> Factor:
        return cls(
            id=str(body["id"]),
            user_id=str(body["user_id"]),
            phone=str(body["phone"]),
            channel=body["channel"],
            status=body["status"],
            created_at=_time(body["created_at"]),
            verified_at=_optional_time(body.get("verified_at")),
        )


@dataclass(frozen=True)
class Enrollment:
    """A phone being enrolled: check a code against ``verification`` to verify ``factor``."""

    factor: Factor
    verification: Verification

    @classmethod
    def from_json(cls, body: Json) -> Enrollment:
        return cls(
            factor=Factor.from_json(body["factor"]),
            verification=Verification.from_json(body["verification"]),
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
        return cls(status=body["status"])


@dataclass(frozen=True)
class Event:
    """One line of a user's security trail (``factor.verified``, ``user.locked_out``, …)."""

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
            user_id=body.get("user_id"),
            api_key=body.get("api_key"),
            client_ip=body.get("client_ip"),
            destination=body.get("destination"),
            verification_id=_optional_id(body.get("verification_id")),
            factor_id=_optional_id(body.get("factor_id")),
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
            next_before=body.get("next_before"),
        )


def _optional_id(value: Any) -> str | None:
    return None if value is None else str(value)


def recovery_codes_from_json(body: Json) -> tuple[str, ...]:
    return tuple(str(code) for code in body["codes"])
