"""How a factor looks to a login server: its phone number or email address masked."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.kit.destinations import mask_destination
from shared.two_step.domain import FactorStatus
from shared.two_step.models import Factor
from shared.verifications.domain import Channel
from shared.verifications.views import View


class FactorOut(BaseModel):
    id: uuid.UUID
    user_id: str
    phone: str | None = Field(description="Masked, e.g. +1415•••••23; null for an email factor")
    email: str | None = Field(
        default=None, description="Masked, e.g. a•••@example.com; null for a phone"
    )
    channel: Channel
    status: FactorStatus
    created_at: datetime
    verified_at: datetime | None

    @classmethod
    def from_row(cls, row: Factor) -> FactorOut:
        return cls(
            id=row.id,
            user_id=row.user_id,
            phone=None if row.channel.reaches_email else mask_destination(row.destination),
            email=mask_destination(row.destination) if row.channel.reaches_email else None,
            channel=row.channel,
            status=row.status,
            created_at=row.created_at,
            verified_at=row.verified_at,
        )


def factor_view(row: Factor, **now: Any) -> View:
    """The factor as the API shows it; ``now``: what a statement just changed in it."""
    return FactorOut.from_row(row).model_copy(update=now).model_dump(mode="json")
