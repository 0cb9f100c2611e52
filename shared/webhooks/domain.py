"""What a webhook endpoint hears of, and a delivery's states."""

from __future__ import annotations

from enum import StrEnum

from shared.kit.lifecycle import JobMove, Lifecycle


class DeliveryStatus(StrEnum):
    """A webhook delivery: waiting for (another) attempt, accepted by the receiver, given up."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    FAILED = "failed"


# A delivery is claimed and released without leaving "queued"; the receiver's answer settles it.
DELIVERY_LIFECYCLE = Lifecycle[DeliveryStatus](
    moves={
        JobMove.CLAIM: {DeliveryStatus.QUEUED: DeliveryStatus.QUEUED},
        JobMove.RELEASE: {DeliveryStatus.QUEUED: DeliveryStatus.QUEUED},
        JobMove.TIME_OUT: {DeliveryStatus.QUEUED: DeliveryStatus.FAILED},
    },
    final=frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}),
)


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
