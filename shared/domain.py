"""States and words of the domain (architecture §3). Pure: no I/O, no frameworks."""

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


class ErrorCode(StrEnum):
    """Stable words for why a verification or check ended badly (``error.code`` in the API)."""

    INVALID_PHONE_NUMBER = "invalid_phone_number"
    LANDLINE_NOT_SUPPORTED = "landline_not_supported"
    FRAUD_BLOCKED = "fraud_blocked"
    COUNTRY_BLOCKED = "country_blocked"
    PROVIDER_REJECTED = "provider_rejected"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    MAX_SEND_ATTEMPTS_REACHED = "max_send_attempts_reached"
    MAX_CHECK_ATTEMPTS_REACHED = "max_check_attempts_reached"
    VERIFICATION_EXPIRED = "verification_expired"
    CODE_UNAVAILABLE = "code_unavailable"
