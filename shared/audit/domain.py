"""What the audit trail records."""

from __future__ import annotations

from enum import StrEnum


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
