"""A verification's and a check's states and words (architecture §3). Pure: no I/O."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    SMS = "sms"
    CALL = "call"


class Purpose(StrEnum):
    STANDALONE = "standalone"
    ENROLLMENT = "enrollment"
    LOGIN = "login"


class VerificationStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    PENDING = "pending"
    APPROVED = "approved"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    MAX_ATTEMPTS_REACHED = "max_attempts_reached"

    @property
    def is_final(self) -> bool:
        return self in FINAL_VERIFICATION_STATUSES


FINAL_VERIFICATION_STATUSES = frozenset(
    {
        VerificationStatus.APPROVED,
        VerificationStatus.FAILED,
        VerificationStatus.EXPIRED,
        VerificationStatus.CANCELED,
        VerificationStatus.MAX_ATTEMPTS_REACHED,
    }
)


# Not over in twostep: a send may still be made, or a check accepted.
OPEN_VERIFICATION_STATUSES = frozenset(
    {VerificationStatus.QUEUED, VerificationStatus.SENDING, VerificationStatus.PENDING}
)


class CheckStatus(StrEnum):
    QUEUED = "queued"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    MAX_ATTEMPTS_REACHED = "max_attempts_reached"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self is not CheckStatus.QUEUED
