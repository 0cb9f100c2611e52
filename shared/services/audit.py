"""The audit trail: one row per thing that happened to a user's verification or factors,
written in the same transaction as the change it records."""

from __future__ import annotations

import uuid
from typing import Any

from shared.clock import utcnow
from shared.db.models import Event, Verification
from shared.db.session import UnitOfWork
from shared.domain import EventType
from shared.phone import mask_e164


async def record(
    uow: UnitOfWork,
    event_type: EventType,
    *,
    tenant_id: uuid.UUID,
    user_id: str | None,
    api_key_id: uuid.UUID | None = None,
    client_ip: str | None = None,
    phone_e164: str | None = None,
    verification_id: uuid.UUID | None = None,
    factor_id: uuid.UUID | None = None,
    **detail: Any,
) -> None:
    await uow.events.append(
        Event(
            occurred_at=utcnow(),
            tenant_id=tenant_id,
            type=event_type,
            user_id=user_id,
            api_key_id=api_key_id,
            client_ip=client_ip,
            destination=mask_e164(phone_e164) if phone_e164 else None,
            verification_id=verification_id,
            factor_id=factor_id,
            detail={key: value for key, value in detail.items() if value is not None},
        )
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
    await record(
        uow,
        event_type,
        tenant_id=verification.tenant_id,
        user_id=verification.user_id,
        api_key_id=api_key_id or verification.api_key_id,
        client_ip=verification.client_ip,
        phone_e164=verification.to_e164,
        verification_id=verification.id,
        purpose=verification.purpose.value,
        **detail,
    )
