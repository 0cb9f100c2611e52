"""The audit trail: one row per thing that happened to a user's verification or factors,
written in the same transaction as the change it records (on the hot path, on PostgreSQL, in
its very statement: ``event_of``), at the time the process's clock gives."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared.audit.domain import EventType
from shared.audit.models import Event
from shared.kit.destinations import mask_destination
from shared.tenants.models import ApiKey
from shared.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom and what an event is about, and who caused it."""

    tenant_id: uuid.UUID
    user_id: str | None
    api_key_id: uuid.UUID | None = None
    client_ip: str | None = None
    destination: str | None = None  # stored masked
    verification_id: uuid.UUID | None = None
    factor_id: uuid.UUID | None = None

    @classmethod
    def of_request(
        cls,
        api_key: ApiKey,
        user_id: str | None,
        *,
        client_ip: str | None = None,
        destination: str | None = None,
    ) -> Subject:
        """Caused by a key's request, in the key's tenant."""
        return cls(api_key.tenant_id, user_id, api_key.id, client_ip, destination)


async def record(uow: UnitOfWork, event_type: EventType, subject: Subject, **detail: Any) -> None:
    await uow.events.append(event_of(uow, event_type, subject, **detail))


def event_of(uow: UnitOfWork, event_type: EventType, subject: Subject, **detail: Any) -> Event:
    """The event ``record`` appends, for a repository that appends it with the change it
    records, in one statement."""
    return Event(
        occurred_at=uow.clock.now(),
        tenant_id=subject.tenant_id,
        type=event_type,
        user_id=subject.user_id,
        api_key_id=subject.api_key_id,
        client_ip=subject.client_ip,
        destination=mask_destination(subject.destination) if subject.destination else None,
        verification_id=subject.verification_id,
        factor_id=subject.factor_id,
        detail={key: value for key, value in detail.items() if value is not None},
    )
