"""A verification's events in the audit trail: attributed to whoever asked for it."""

from __future__ import annotations

import uuid
from typing import Any

from shared.audit.domain import EventType
from shared.audit.models import Event
from shared.audit.service import Subject, event_of, record
from shared.limits.ports import Lock
from shared.unit_of_work import UnitOfWork
from shared.verifications.models import Verification
from shared.webhooks.domain import WebhookEvent
from shared.webhooks.outbox import announce


def subject_of(verification: Verification, api_key_id: uuid.UUID | None = None) -> Subject:
    """Attributed to whoever asked for the verification, or to ``api_key_id``."""
    return Subject(
        tenant_id=verification.tenant_id,
        user_id=verification.user_id,
        api_key_id=api_key_id or verification.api_key_id,
        client_ip=verification.client_ip,
        destination=verification.destination,
        verification_id=verification.id,
    )


async def record_for(
    uow: UnitOfWork,
    event_type: EventType,
    verification: Verification,
    *,
    api_key_id: uuid.UUID | None = None,
    **detail: Any,
) -> None:
    """An event about a verification, attributed to whoever asked for it (or ``api_key_id``)."""
    await uow.events.append(
        event_for(uow, event_type, verification, api_key_id=api_key_id, **detail)
    )


def event_for(
    uow: UnitOfWork,
    event_type: EventType,
    verification: Verification,
    *,
    api_key_id: uuid.UUID | None = None,
    **detail: Any,
) -> Event:
    """The event ``record_for`` appends, for a repository that writes it with the change."""
    subject = subject_of(verification, api_key_id)
    return event_of(uow, event_type, subject, purpose=verification.purpose.value, **detail)


async def record_lock(uow: UnitOfWork, subject: Subject, lock: Lock) -> None:
    """A wrong code caused a lock: recorded, and a user told of it (``user.locked``)."""
    detail = lock_detail(lock)
    await record(uow, EventType.USER_LOCKED, subject, **detail)
    if subject.user_id is not None:
        announce(uow, subject.tenant_id, WebhookEvent.USER_LOCKED, subject.user_id, **detail)


def lock_detail(lock: Lock) -> dict[str, Any]:
    """How an event records a lock: its length, or that it lasts until released."""
    return {"hard": True} if lock.hard else {"seconds": lock.seconds}
