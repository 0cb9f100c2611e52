"""A check's row: a job row like a send, whose outcome is the provider's answer."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Uuid,
    bindparam,
    select,
    update,
)
from sqlalchemy.sql import Executable

from shared.errors import AttemptError
from shared.kit.db.repository import JobRows
from shared.kit.db.statements import (
    ERROR,
    NOW,
    RELEASED,
    ROW_ID,
    TENANT_ID,
    column_param,
    error_columns,
    joined,
    prepared,
)
from shared.verifications.domain import CHECK_LIFECYCLE, CheckStatus
from shared.verifications.models import Verification, VerificationCheck
from shared.verifications.repository import VerificationRepository


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

    @prepared
    def _claim_with_verification(cls) -> Executable:
        claimed = cls._claim.cte("claimed")  # type: ignore[attr-defined]  # an UPDATE … RETURNING
        verifications = Verification.__table__
        return (
            select(claimed, verifications)
            .join(verifications, verifications.c.id == claimed.c.verification_id)
            .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
        )

    async def claim_with_verification(
        self, check_id: uuid.UUID, *, now: datetime, until: datetime
    ) -> tuple[VerificationCheck, Verification] | None:
        """Claim the check (as ``claim``) and read its verification: in one statement where
        the database can (``_can_claim_with_reads``)."""
        if not self._can_claim_with_reads():
            check = await self.claim(check_id, now=now, until=until)
            if check is None:
                return None
            verification = await VerificationRepository(self._hold).get(check.verification_id)
            return None if verification is None else (check, verification)
        rows = await self._claiming(
            self._claim_with_verification, row_id=check_id, now=now, until=until
        )
        if not rows:
            return None
        return joined(rows[0], "claimed", VerificationCheck), joined(
            rows[0], "verifications", Verification
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
