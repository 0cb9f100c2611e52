"""Tenants, their API keys and idempotency records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    delete,
    select,
    update,
)

from shared.kit.db.repository import Repository
from shared.tenants.models import ApiKey, IdempotencyRecord, Tenant


class TenantRepository(Repository):
    async def get_or_create(self, name: str, now: datetime) -> Tenant:
        """A tenant that sends through the deployment's Verify service (the default one)."""
        tenant = await self.get_by_name(name)
        if tenant is None:
            tenant = Tenant(id=uuid.uuid4(), name=name, display_name=name[:30], created_at=now)
            await self.add(tenant)
        return tenant

    async def add(self, tenant: Tenant) -> None:
        self.session.add(tenant)
        await self.session.flush()

    async def get(self, tenant_id: uuid.UUID) -> Tenant | None:
        return await self.session.get(Tenant, tenant_id)

    async def get_by_name(self, name: str) -> Tenant | None:
        return await self.session.scalar(select(Tenant).where(Tenant.name == name))

    async def list_all(self) -> Sequence[Tenant]:
        return (await self.session.scalars(select(Tenant).order_by(Tenant.created_at))).all()

    async def set_service(self, tenant_id: uuid.UUID, service_sid: str, display_name: str) -> None:
        await self._write(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(verify_service_sid=service_sid, display_name=display_name)
        )

    async def set_relying_party(self, tenant_id: uuid.UUID, rp_id: str, origins: list[str]) -> None:
        await self._write(
            update(Tenant)
            .where(Tenant.id == tenant_id)
            .values(passkey_rp_id=rp_id, passkey_origins=origins)
        )

    async def names(self) -> dict[uuid.UUID, str]:
        return {t.id: t.name for t in (await self.session.scalars(select(Tenant))).all()}


class ApiKeyRepository(Repository):
    def add(self, key: ApiKey) -> None:
        self.session.add(key)

    async def get_active_by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.session.scalar(
            select(ApiKey).where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )

    async def get_by_name(self, name: str) -> ApiKey | None:
        return await self.session.scalar(select(ApiKey).where(ApiKey.name == name))

    async def list_all(self) -> Sequence[ApiKey]:
        return (await self.session.scalars(select(ApiKey).order_by(ApiKey.created_at))).all()

    async def revoke(self, key_id: uuid.UUID, now: datetime) -> bool:
        return (
            await self._write(
                update(ApiKey)
                .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            == 1
        )


class IdempotencyRepository(Repository):
    async def get(self, api_key_id: uuid.UUID, key: str) -> IdempotencyRecord | None:
        return await self.session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.api_key_id == api_key_id, IdempotencyRecord.key == key
            )
        )

    def add(self, record: IdempotencyRecord) -> None:
        self.session.add(record)

    async def delete_expired(self, now: datetime) -> int:
        return await self._write(
            delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
        )

    async def delete_expired_key(self, api_key_id: uuid.UUID, key: str, now: datetime) -> int:
        return await self._write(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.expires_at <= now,
                IdempotencyRecord.api_key_id == api_key_id,
                IdempotencyRecord.key == key,
            )
        )
