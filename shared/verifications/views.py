"""How a verification and a check look to a login server: one JSON shape, whether it comes in
an answer or in a change notice to a waiting request. Phone numbers leave only masked; a code
never leaves at all."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.kit.changes import Change
from shared.kit.destinations import mask_destination
from shared.verifications.domain import Channel, CheckStatus, Purpose, VerificationStatus
from shared.verifications.models import Verification, VerificationCheck

View = dict[str, Any]


class ErrorOut(BaseModel):
    code: str
    message: str | None
    provider_code: int | None


class VerificationOut(BaseModel):
    id: uuid.UUID
    status: VerificationStatus
    channel: Channel
    to: str = Field(
        description="Masked, e.g. +1415•••••23 or a•••@example.com; for channel totp, "
        '"authenticator app"'
    )
    purpose: Purpose
    user_id: str | None
    send_attempts: int
    check_attempts: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    error: ErrorOut | None

    @classmethod
    def from_row(cls, row: Verification) -> VerificationOut:
        return cls(
            id=row.id,
            status=row.status,
            channel=row.channel,
            to=mask_destination(row.destination) if row.channel.sends_code else "authenticator app",
            purpose=row.purpose,
            user_id=row.user_id,
            send_attempts=row.send_attempts,
            check_attempts=row.check_attempts,
            created_at=row.created_at,
            updated_at=row.updated_at,
            expires_at=row.expires_at,
            error=_error(
                row.status.is_final, row.error_code, row.error_message, row.provider_error_code
            ),
        )


class CheckOut(BaseModel):
    id: uuid.UUID
    verification_id: uuid.UUID
    status: CheckStatus
    created_at: datetime
    completed_at: datetime | None
    error: ErrorOut | None

    @classmethod
    def from_row(cls, row: VerificationCheck) -> CheckOut:
        return cls(
            id=row.id,
            verification_id=row.verification_id,
            status=row.status,
            created_at=row.created_at,
            completed_at=row.completed_at,
            error=_error(
                row.status.is_final, row.error_code, row.error_message, row.provider_error_code
            ),
        )


def _error(
    is_final: bool, code: str | None, message: str | None, provider_code: int | None
) -> ErrorOut | None:
    # While a job is still retrying, its last error is an internal detail, not an outcome.
    if not is_final or code is None:
        return None
    return ErrorOut(code=code, message=message, provider_code=provider_code)


def verification_view(row: Verification) -> View:
    return VerificationOut.from_row(row).model_dump(mode="json")


def check_view(row: VerificationCheck) -> View:
    return CheckOut.from_row(row).model_dump(mode="json")


def change_of(row: Verification | VerificationCheck) -> Change:
    """A notice for waiters, carrying the row as the API shows it now."""
    if isinstance(row, Verification):
        return Change(row.id, verification_view(row), "verification", row.tenant_id)
    return Change(row.id, check_view(row), "check", row.tenant_id)
