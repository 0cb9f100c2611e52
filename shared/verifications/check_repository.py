"""A check's row: a job row like a send, whose outcome is the provider's answer."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    Uuid,
    bindparam,
    select,
    update,
)
from sqlalchemy.sql import Executable

from shared.errors import AttemptError
from shared.kit.db.repository import (
    ERROR,
    NOW,
    RELEASED,
    ROW_ID,
    TENANT_ID,
    JobRows,
    column_param,
    error_columns,
    prepared,
)
from shared.verifications.domain import CHECK_LIFECYCLE, CheckStatus
from shared.verifications.models import VerificationCheck


class CheckRepository(JobRows[VerificationCheck]):
    model = VerificationCheck
    lifecycle = CHECK_LIFECYCLE

    @prepared
    def _of_verification(cls) -> Executable:
        c = VerificationCheck
        return select(c).where(
            c.id == ROW_ID,
            c.verification_id == bindparam("verification_id", type_=Uuid()),
            c.tenant_id == TENANT_ID,
        )

    async def get_for_verification(
        self, tenant_id: uuid.UUID, verification_id: uuid.UUID, check_id: uuid.UUID
    ) -> VerificationCheck | None:
        found: VerificationCheck | None = await self._prepared_one(
            VerificationCheck,
            self._of_verification,
            row_id=check_id,
            verification_id=verification_id,
            tenant_id=tenant_id,
        )
        return found

    @prepared
    def _finish(cls) -> Executable:
        c = VerificationCheck
        return (
            update(c)
            .where(cls._held())
            .values(
                status=column_param(c, "status"),
                provider_call_started_at=None,
                completed_at=NOW,
                updated_at=NOW,
                **ERROR,
                **RELEASED,
            )
            .returning(c)
        )

    async def finish(
        self,
        check_id: uuid.UUID,
        token: uuid.UUID,
        *,
        status: CheckStatus,
        error: AttemptError | None,
        now: datetime,
    ) -> VerificationCheck | None:
        """Record a check's final status (and why, unless it was simply answered)."""
        finished: VerificationCheck | None = await self._prepared_one(
            VerificationCheck,
            self._finish,
            row_id=check_id,
            token=token,
            status=status,
            now=now,
            **error_columns(error),
        )
        return finished
