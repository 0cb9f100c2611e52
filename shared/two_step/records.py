"""What happens to a factor, told three ways: the audit trail, a webhook event for the login
server, and a metric once it is committed."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from shared.audit import service as audit
from shared.audit.domain import EventType
from shared.audit.service import Subject
from shared.kit import metrics
from shared.kit.changes import Announcement
from shared.two_step.domain import DisabledReason, FactorStatus
from shared.two_step.models import Factor
from shared.two_step.views import factor_view
from shared.unit_of_work import UnitOfWork
from shared.verifications.domain import FactorKind
from shared.verifications.models import Verification
from shared.webhooks.domain import WebhookEvent


def announce_factor(
    uow: UnitOfWork,
    event: WebhookEvent,
    factor: Factor,
    status: FactorStatus,
    *,
    verified_at: datetime | None = None,
    disabled_reason: DisabledReason | None = None,
) -> None:
    """A webhook event with the factor as it is once this transaction commits: what the
    statement that changed it just wrote."""
    changed: dict[str, Any] = {"status": status}
    if verified_at is not None:
        changed["verified_at"] = verified_at
    if disabled_reason is not None:
        changed["disabled_reason"] = disabled_reason
    uow.announce(Announcement(factor.tenant_id, event, factor_view(factor, **changed)))


async def record_factor(
    uow: UnitOfWork,
    event_type: EventType,
    factor: Factor,
    api_key_id: uuid.UUID | None,
    *,
    through: Verification | None = None,
    **detail: str,
) -> None:
    """Record what happened to a factor; ``through``: the verification the request made."""
    subject = Subject(
        tenant_id=factor.tenant_id,
        user_id=factor.user_id,
        api_key_id=api_key_id,
        client_ip=through.client_ip if through else None,
        destination=factor.destination,
        verification_id=through.id if through else factor.enrollment_verification_id,
        factor_id=factor.id,
    )
    await audit.record(uow, event_type, subject, **detail)
    if event_type is not EventType.CHALLENGE_REQUESTED:  # verifications count those
        _count_after_commit(uow, factor, event_type.value.removeprefix("factor."))


def _count_after_commit(uow: UnitOfWork, factor: Factor, change: str) -> None:
    counter = metrics.FACTOR_CHANGES.labels(type=factor.channel.kind.value, change=change)

    async def count() -> None:
        counter.inc()

    uow.after_commit(count)


# Exported from the start, at zero: a rate over a series that does not exist yet is no rate.
for _kind in FactorKind:
    for _event in EventType:
        if _event.value.startswith("factor."):
            metrics.FACTOR_CHANGES.labels(type=_kind.value, change=_event.value[len("factor.") :])
