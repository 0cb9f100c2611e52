"""How a factor and a login challenge look to a login server: phone numbers and email addresses
masked."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.kit.destinations import mask_destination
from shared.two_step.choice import LoginChallenge
from shared.two_step.domain import DisabledReason, FactorStatus
from shared.two_step.models import Factor
from shared.verifications.domain import Channel, FactorKind
from shared.verifications.views import VerificationOut, View, verification_view


class FactorOut(BaseModel):
    id: uuid.UUID
    user_id: str
    type: FactorKind = Field(
        description="phone, email, totp (an authenticator app) or passkey (WebAuthn)"
    )
    label: str | None = Field(
        default=None, description="An app's or a passkey's name, as enrolled; null otherwise"
    )
    phone: str | None = Field(description="Masked, e.g. +1415•••••23; null but for a phone")
    email: str | None = Field(
        default=None, description="Masked, e.g. a•••@example.com; null but for an address"
    )
    channel: Channel
    status: FactorStatus
    disabled_reason: DisabledReason | None = Field(
        default=None,
        description="Why a disabled factor is: `removed` by the login server, `replaced` by a "
        "newer factor of its kind, or `in_use` — its enrolment's code was approved but the phone "
        "or address is verified for another user of the tenant (tell the user it cannot be "
        "used, not why). Null unless disabled (or disabled before reasons were kept, with its "
        "audit event gone)",
    )
    created_at: datetime
    verified_at: datetime | None

    @classmethod
    def from_row(cls, row: Factor) -> FactorOut:
        kind = row.channel.kind
        return cls(
            id=row.id,
            user_id=row.user_id,
            type=row.channel.kind,
            label=row.label,
            phone=mask_destination(row.destination) if kind is FactorKind.PHONE else None,
            email=mask_destination(row.destination) if kind is FactorKind.EMAIL else None,
            channel=row.channel,
            status=row.status,
            disabled_reason=row.disabled_reason,
            created_at=row.created_at,
            verified_at=row.verified_at,
        )


def factor_view(row: Factor, **now: Any) -> View:
    """The factor as the API shows it; ``now``: what a statement just changed in it."""
    return FactorOut.from_row(row).model_copy(update=now).model_dump(mode="json")


class ChallengeOut(VerificationOut):
    """A login challenge: its verification, the factor it went to and the others to offer."""

    factor_id: uuid.UUID = Field(description="The factor the code went to (or is made by)")
    alternatives: list[FactorOut] = Field(
        description="The user's other verified factors, preferred first: what the login page "
        "can offer instead (a new challenge naming one's `factor_id`)"
    )


def challenge_view(challenge: LoginChallenge) -> View:
    choice = challenge.choice
    return {
        **verification_view(challenge.verification),
        "factor_id": str(choice.factor.id),
        "alternatives": [
            FactorOut.from_row(factor).model_dump(mode="json") for factor in choice.alternatives
        ],
    }
