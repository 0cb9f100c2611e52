"""How a verification and a check look to a login server: one JSON shape, whether it comes in
an answer or in a change notice to a waiting request. Phone numbers leave only masked; a code
never leaves at all."""

from __future__ import annotations

import json
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
        '"authenticator app"; for channel passkey, "passkey"'
    )
    purpose: Purpose
    user_id: str | None
    send_attempts: int
    check_attempts: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    error: ErrorOut | None
    creation_options: dict[str, Any] | None = Field(
        default=None,
        description="A passkey's enrolment, while pending: the WebAuthn "
        "`PublicKeyCredentialCreationOptions` for `navigator.credentials.create({publicKey})` "
        "(as JSON, binary fields base64url, e.g. for `PublicKeyCredential."
        "parseCreationOptionsFromJSON`); null otherwise",
    )
    request_options: dict[str, Any] | None = Field(
        default=None,
        description="A passkey's login challenge, while pending: the WebAuthn "
        "`PublicKeyCredentialRequestOptions` for `navigator.credentials.get({publicKey})`, as "
        "JSON; null otherwise",
    )

    @classmethod
    def from_row(cls, row: Verification) -> VerificationOut:
        sealed = row.passkey_options if row.status is VerificationStatus.PENDING else None
        options = json.loads(sealed) if sealed is not None else None
        enrolling = row.purpose is Purpose.ENROLLMENT
        return cls(
            id=row.id,
            status=row.status,
            channel=row.channel,
            to=_shown(row),
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
            creation_options=options if enrolling else None,
            request_options=None if enrolling else options,
        )


def _shown(row: Verification) -> str:
    """Where the verification goes, as a login server may show it."""
    if row.channel.sends_code:
        return mask_destination(row.destination)
    return "passkey" if row.channel.takes_credential else "authenticator app"


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
