"""The audit trail: one row per thing that happened to a user's verification or factors,
written in the same transaction as the change it records."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared.audit.domain import EventType
from shared.audit.models import Event
from shared.kit.clock import utcnow
from shared.kit.phone import mask_e164
from shared.tenants.models import ApiKey
from shared.two_step.models import Factor
from shared.unit_of_work import UnitOfWork
from shared.verifications.models import Verification


@dataclass(frozen=True, slots=True)
class Subject:
    """Whom and what an event is about, and who caused it."""

    tenant_id: uuid.UUID
    user_id: str | None
    api_key_id: uuid.UUID | None = None
    client_ip: str | None = None
    phone_e164: str | None = None  # stored masked
    verification_id: uuid.UUID | None = None
    factor_id: uuid.UUID | None = None

    @classmethod
    def of_verification(
        cls, verification: Verification, api_key_id: uuid.UUID | None = None
    ) -> Subject:
        """Attributed to whoever asked for the verification, or to ``api_key_id``."""
        return cls(
            tenant_id=verification.tenant_id,
            user_id=verification.user_id,
            api_key_id=api_key_id or verification.api_key_id,
            client_ip=verification.client_ip,
            phone_e164=verification.to_e164,
            verification_id=verification.id,
        )

    @classmethod
    def of_factor(
        cls,
        factor: Factor,
        api_key_id: uuid.UUID | None,
        *,
        client_ip: str | None = None,
        verification_id: uuid.UUID | None = None,
    ) -> Subject:
        return cls(
            tenant_id=factor.tenant_id,
            user_id=factor.user_id,
            api_key_id=api_key_id,
            client_ip=client_ip,
            phone_e164=factor.phone_e164,
            verification_id=verification_id or factor.enrollment_verification_id,
            factor_id=factor.id,
        )

    @classmethod
    def of_request(
        cls,
        api_key: ApiKey,
        user_id: str | None,
        *,
        client_ip: str | None = None,
        phone_e164: str | None = None,
    ) -> Subject:
        """Caused by a key's request, in the key's tenant."""
        return cls(api_key.tenant_id, user_id, api_key.id, client_ip, phone_e164)


async def record(uow: UnitOfWork, event_type: EventType, subject: Subject, **detail: Any) -> None:
    await uow.events.append(
        Event(
            occurred_at=utcnow(),
            tenant_id=subject.tenant_id,
            type=event_type,
            user_id=subject.user_id,
            api_key_id=subject.api_key_id,
            client_ip=subject.client_ip,
            destination=mask_e164(subject.phone_e164) if subject.phone_e164 else None,
            verification_id=subject.verification_id,
            factor_id=subject.factor_id,
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
        Subject.of_verification(verification, api_key_id),
        purpose=verification.purpose.value,
        **detail,
    )
