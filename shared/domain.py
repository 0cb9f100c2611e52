"""States and words of the domain (architecture §3). Pure: no I/O, no frameworks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """What an API key may do. A key holds one or more."""

    VERIFY = "verify"  # verifications and their checks
    USERS = "users"  # enrolling and listing factors, login challenges, redeeming recovery codes
    # What a login site also needs, and no more: removing a factor, a new set of recovery codes,
    # a user's audit trail.
    USERS_MANAGE = "users:manage"
    # The operator's: lifting lockouts, webhooks and their deliveries, /metrics.
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)
DEFAULT_TENANT = "default"


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


class FactorStatus(StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    DISABLED = "disabled"


class DeliveryStatus(StrEnum):
    """A webhook delivery: waiting for (another) attempt, accepted by the receiver, given up."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


class WebhookEvent(StrEnum):
    """What a webhook endpoint can hear of: a verification's or a check's new state, and what
    happened to a user's account that the user should be told of (ASVS 2.2.3, 2.5.5)."""

    VERIFICATION_PENDING = "verification.pending"
    VERIFICATION_APPROVED = "verification.approved"
    VERIFICATION_FAILED = "verification.failed"
    VERIFICATION_EXPIRED = "verification.expired"
    VERIFICATION_CANCELED = "verification.canceled"
    VERIFICATION_MAX_ATTEMPTS = "verification.max_attempts_reached"
    CHECK_REJECTED = "check.rejected"
    FACTOR_ADDED = "factor.added"
    FACTOR_REMOVED = "factor.removed"
    RECOVERY_CODES_GENERATED = "recovery_codes.generated"
    RECOVERY_CODE_USED = "recovery_code.used"
    USER_LOCKED = "user.locked"
    USER_UNLOCKED = "user.unlocked"


class EventType(StrEnum):
    """What the audit trail records. Never a code; destinations only masked."""

    VERIFICATION_REQUESTED = "verification.requested"
    VERIFICATION_RESEND_REQUESTED = "verification.resend_requested"
    VERIFICATION_SENT = "verification.sent"
    VERIFICATION_FAILED = "verification.failed"
    # A re-send could not be made; the verification stays pending with the code sent first.
    VERIFICATION_RESEND_FAILED = "verification.resend_failed"
    VERIFICATION_APPROVED = "verification.approved"
    VERIFICATION_CANCELED = "verification.canceled"
    # A newer verification to the same number took its place (Twilio holds one per number).
    VERIFICATION_SUPERSEDED = "verification.superseded"
    VERIFICATION_MAX_ATTEMPTS = "verification.max_attempts_reached"
    CHECK_REJECTED = "check.rejected"
    FACTOR_ENROLLMENT_STARTED = "factor.enrollment_started"
    FACTOR_VERIFIED = "factor.verified"
    FACTOR_REPLACED = "factor.replaced"
    FACTOR_DISABLED = "factor.disabled"
    # The code was right but the phone could not be enrolled (e.g. verified for another user);
    # answered like any other enrolment so that nobody learns which phones are enrolled.
    FACTOR_ENROLLMENT_FAILED = "factor.enrollment_failed"
    CHALLENGE_REQUESTED = "challenge.requested"
    USER_LOCKED = "user.locked"
    LOCKOUT_RELEASED = "lockout.released"
    RECOVERY_CODES_GENERATED = "recovery_codes.generated"
    RECOVERY_CODE_USED = "recovery_code.used"
    RECOVERY_CODE_REJECTED = "recovery_code.rejected"


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
    # A newer verification to the same number took this one's place.
    SUPERSEDED = "superseded"
    # Twilio Lookup: the number is not of a line type codes may go to (a landline, VoIP...).
    LINE_TYPE_NOT_ALLOWED = "line_type_not_allowed"
    # Twilio Lookup: the number's SIM changed recently; codes by SMS or call are refused for now.
    SIM_SWAP_DETECTED = "sim_swap_detected"


@dataclass(frozen=True, slots=True)
class AttemptError:
    """Why an attempt at a job (a send, a check) did not succeed, as its row records it."""

    reason: ErrorCode
    message: str
    provider_code: int | None = None
