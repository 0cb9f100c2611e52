"""An enrolment's end: the approval of its verification verifies the factor (and retires the
ones it replaces), in the transaction that approves it, for every kind of factor alike."""

from __future__ import annotations

from datetime import datetime

import structlog

from shared.audit.domain import EventType
from shared.two_step.domain import DisabledReason, FactorStatus
from shared.two_step.records import announce_factor, record_factor
from shared.unit_of_work import UnitOfWork
from shared.verifications.domain import Purpose
from shared.verifications.models import Verification
from shared.webhooks.domain import WebhookEvent

log = structlog.get_logger(__name__)


async def on_verification_approved(
    uow: UnitOfWork, verification: Verification, now: datetime, *, one_user_per_phone: bool
) -> None:
    """Called in the transaction that approves a verification: an enrolment's approval
    verifies its factor (and retires the phone it replaces)."""
    if verification.purpose is not Purpose.ENROLLMENT:
        return
    factor = await uow.factors.by_enrollment(verification.id)
    if factor is None or factor.status is not FactorStatus.UNVERIFIED:
        return
    if one_user_per_phone and await uow.factors.verified_for_another_user(factor):
        await uow.factors.disable(factor.id, now, DisabledReason.IN_USE)
        await record_factor(
            uow,
            EventType.FACTOR_ENROLLMENT_FAILED,
            factor,
            verification.api_key_id,
            reason=f"{factor.channel.kind.value}_in_use",
        )
        log.info("factor.enrollment_failed", factor_id=str(factor.id), reason="in use")
        return
    await uow.factors.verify(factor.id, now)
    await record_factor(uow, EventType.FACTOR_VERIFIED, factor, verification.api_key_id)
    announce_factor(uow, WebhookEvent.FACTOR_ADDED, factor, FactorStatus.VERIFIED, verified_at=now)
    if factor.replaces_others:
        for old in await uow.factors.verified_others(factor):
            await uow.factors.disable(old.id, now, DisabledReason.REPLACED)
            await record_factor(
                uow, EventType.FACTOR_REPLACED, old, verification.api_key_id, by=str(factor.id)
            )
            announce_factor(
                uow,
                WebhookEvent.FACTOR_REMOVED,
                old,
                FactorStatus.DISABLED,
                disabled_reason=DisabledReason.REPLACED,
            )
