"""A check's row: a job row like a send, whose outcome is the provider's answer."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Uuid,
    bindparam,
    select,
    true,
    update,
)
from sqlalchemy.sql import Executable

from shared.audit.models import Event
from shared.audit.repository import EVENT_VALUES, EventRepository, event_values
from shared.errors import AttemptError
from shared.kit.db.repository import JobRows
from shared.kit.db.statements import (
    ERROR,
    NOW,
    RELEASED,
    ROW_ID,
    TENANT_ID,
    appended_to,
    appending,
    column_param,
    error_columns,
    joined,
    prepared,
    row_values,
    values_of,
)
from shared.verifications.domain import CHECK_LIFECYCLE, CheckStatus, VerificationMove
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
    def _insert_taking_attempt(cls) -> Executable:
        taken = VerificationRepository._take_check_attempt
        table = VerificationCheck.__table__
        return appending(taken, table, values_of(table))  # type: ignore[arg-type]  # mapped classes have one

    async def insert_taking_attempt(
        self, check: VerificationCheck, max_attempts: int, now: datetime
    ) -> bool:
        """Count one more check against its verification (as ``take_check_attempt``) and
        insert it, or neither: one statement where the database can (``_writes_in_with``), so
        on PostgreSQL no transaction around them. False if the attempt was not there to take."""
        if not self._writes_in_with():
            verifications = VerificationRepository(self._hold)
            if not await verifications.take_check_attempt(check.verification_id, max_attempts, now):
                return False
            await self.insert(check)
            return True
        taken = await self._run_prepared(
            self._insert_taking_attempt,
            row_id=check.verification_id,
            max_attempts=max_attempts,
            now=now,
            **row_values(check),
        )
        return len(taken) == 1

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
        the database can (``_writes_in_with``)."""
        if not self._writes_in_with():
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

    @prepared
    def _finish_approving(cls) -> Executable:
        finished = cls._finish.cte("finished")  # type: ignore[attr-defined]  # an UPDATE … RETURNING
        approving = VerificationRepository.ending_of(
            VerificationMove.APPROVE, select(finished.c.verification_id).scalar_subquery()
        )
        approved, appended = appended_to(approving, Event.__table__, EVENT_VALUES)  # type: ignore[arg-type]  # mapped classes have one
        return (
            select(finished, approved)
            .select_from(finished.outerjoin(approved, true()))
            .add_cte(appended)
            .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
        )

    async def finish_approving(
        self, check_id: uuid.UUID, token: uuid.UUID, approved_event: Event, now: datetime
    ) -> tuple[VerificationCheck | None, Verification | None]:
        """The check approved (as ``finish``), then its verification (as ``end_pending``), and
        the event of that: one statement where the database can (``_writes_in_with``), so on
        PostgreSQL no transaction around them. The verification is None if it was no longer
        pending; both are if the check was not this token's to finish."""
        approved = CheckStatus.APPROVED
        if not self._writes_in_with():
            finished = await self.finish(check_id, token, status=approved, error=None, now=now)
            if finished is None:
                return None, None
            verifications = VerificationRepository(self._hold)
            ended = await verifications.approve(finished.verification_id, now)
            if ended is not None:
                await EventRepository(self._hold).append(approved_event)
            return finished, ended
        row = (
            await self._run_prepared(
                self._finish_approving,
                row_id=check_id,
                token=token,
                status=approved,
                provider_open=False,  # Twilio deletes a verification as it approves it
                now=now,
                # The check's and the verification's error columns share their parameters:
                # neither has an error.
                **error_columns(None),
                **event_values(approved_event),
            )
        ).first()
        if row is None:
            return None, None
        finished = joined(row, "finished", VerificationCheck)
        ended = None if row["written_id"] is None else joined(row, "written", Verification)
        return finished, ended
