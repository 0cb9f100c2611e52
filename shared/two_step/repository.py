"""A tenant's users' factors and recovery codes. Every read names the tenant."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    delete,
    func,
    select,
    update,
)

from shared.kit.db.repository import Repository
from shared.two_step.domain import DisabledReason, FactorStatus
from shared.two_step.models import Factor, RecoveryCode


class FactorRepository(Repository):
    """A tenant's users' phones and email addresses. Every read names the tenant."""

    def add(self, factor: Factor) -> None:
        self.session.add(factor)

    async def get(self, tenant_id: uuid.UUID, user_id: str, factor_id: uuid.UUID) -> Factor | None:
        return await self.session.scalar(
            select(Factor).where(
                Factor.id == factor_id, Factor.tenant_id == tenant_id, Factor.user_id == user_id
            )
        )

    async def list_for_user(self, tenant_id: uuid.UUID, user_id: str) -> Sequence[Factor]:
        return (
            await self.session.scalars(
                select(Factor)
                .where(Factor.tenant_id == tenant_id, Factor.user_id == user_id)
                .order_by(Factor.created_at)
            )
        ).all()

    async def verified_for_user(
        self, tenant_id: uuid.UUID, user_id: str, *, for_update: bool = False
    ) -> Sequence[Factor]:
        """The user's verified factors: a handful at most, chosen among in ``choice``.
        ``for_update``: locked until the transaction ends (PostgreSQL), so that two removals
        at once cannot each count on the factor the other removes."""
        query = select(Factor).where(
            Factor.tenant_id == tenant_id,
            Factor.user_id == user_id,
            Factor.status == FactorStatus.VERIFIED,
        )
        return (await self.session.scalars(query.with_for_update() if for_update else query)).all()

    async def verified_for_another_user(self, factor: Factor) -> bool:
        """Whether the factor's phone is verified for another user of its tenant."""
        found = await self.session.scalar(
            select(Factor.id)
            .where(
                Factor.tenant_id == factor.tenant_id,
                Factor.destination_lookup == factor.destination_lookup,
                Factor.status == FactorStatus.VERIFIED,
                Factor.user_id != factor.user_id,
            )
            .limit(1)
        )
        return found is not None

    async def by_enrollment(self, verification_id: uuid.UUID) -> Factor | None:
        return await self.session.scalar(
            select(Factor).where(Factor.enrollment_verification_id == verification_id)
        )

    async def set_destination_of_enrollment(
        self, verification_id: uuid.UUID, destination: str
    ) -> None:
        """An app's factor learns its SID at Twilio, made at its enrolment's first code."""
        await self._write(
            update(Factor)
            .where(Factor.enrollment_verification_id == verification_id)
            .values(destination=destination)
        )

    async def verify(self, factor_id: uuid.UUID, now: datetime) -> bool:
        return (
            await self._write(
                update(Factor)
                .where(Factor.id == factor_id, Factor.status == FactorStatus.UNVERIFIED)
                .values(status=FactorStatus.VERIFIED, verified_at=now, updated_at=now)
            )
            == 1
        )

    async def disable(self, factor_id: uuid.UUID, now: datetime, reason: DisabledReason) -> bool:
        return (
            await self._write(
                update(Factor)
                .where(Factor.id == factor_id, Factor.status != FactorStatus.DISABLED)
                .values(
                    status=FactorStatus.DISABLED,
                    disabled_at=now,
                    disabled_reason=reason,
                    updated_at=now,
                )
            )
            == 1
        )

    async def verified_others(self, factor: Factor) -> Sequence[Factor]:
        """The factor's user's other verified factors of its kind: phones for a phone, email
        addresses for an address, apps for an app (a new phone does not retire the user's
        email)."""
        return (
            await self.session.scalars(
                select(Factor).where(
                    Factor.tenant_id == factor.tenant_id,
                    Factor.user_id == factor.user_id,
                    Factor.status == FactorStatus.VERIFIED,
                    Factor.id != factor.id,
                    Factor.channel.in_(sorted(factor.channel.of_kind())),
                )
            )
        ).all()

    async def forget_enrollments(self, verification_ids: Sequence[uuid.UUID]) -> int:
        """Unlink factors from enrolment verifications about to be deleted (retention)."""
        return await self._write(
            update(Factor)
            .where(Factor.enrollment_verification_id.in_(verification_ids))
            .values(enrollment_verification_id=None)
        )


class RecoveryCodeRepository(Repository):
    async def replace_for_user(
        self, tenant_id: uuid.UUID, user_id: str, codes: Sequence[RecoveryCode]
    ) -> None:
        await self._write(
            delete(RecoveryCode).where(
                RecoveryCode.tenant_id == tenant_id, RecoveryCode.user_id == user_id
            )
        )
        self.session.add_all(codes)

    async def unused_candidates(
        self, tenant_id: uuid.UUID, user_id: str, selector: str | None
    ) -> Sequence[RecoveryCode]:
        """The unused code with this selector (at most one), or with ``None`` the user's unused
        codes made before selectors existed."""
        selected = (
            RecoveryCode.selector.is_(None)
            if selector is None
            else RecoveryCode.selector == selector
        )
        return (
            await self.session.scalars(
                select(RecoveryCode).where(
                    RecoveryCode.tenant_id == tenant_id,
                    RecoveryCode.user_id == user_id,
                    RecoveryCode.used_at.is_(None),
                    selected,
                )
            )
        ).all()

    async def count_unused(self, tenant_id: uuid.UUID, user_id: str) -> int:
        total = await self.session.scalar(
            select(func.count(RecoveryCode.id)).where(
                RecoveryCode.tenant_id == tenant_id,
                RecoveryCode.user_id == user_id,
                RecoveryCode.used_at.is_(None),
            )
        )
        return int(total or 0)

    async def use(self, code_id: uuid.UUID, now: datetime) -> bool:
        """Spend a code, once: of two racing redemptions only one succeeds."""
        return (
            await self._write(
                update(RecoveryCode)
                .where(RecoveryCode.id == code_id, RecoveryCode.used_at.is_(None))
                .values(used_at=now)
            )
            == 1
        )
