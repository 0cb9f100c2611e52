"""What a verification's send and a check share as attempts: the worker's dependencies
(``ProviderCalls``) and a claim committed on its own."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from shared.kit.attempts import Attempt, claim
from shared.kit.db.base import JobRow
from shared.unit_of_work import UnitOfWork
from shared.verifications.provider_calls import ProviderCalls

Row = TypeVar("Row", bound=JobRow)
Answer = TypeVar("Answer")


class VerificationAttempt(Attempt[UnitOfWork, Row, Answer]):
    """A send's or a check's attempt: the engine's ``Attempt`` with the worker's provider calls."""

    def __init__(self, calls: ProviderCalls, row_id: uuid.UUID) -> None:
        super().__init__(row_id)
        self.calls = calls

    async def _claim(self, now: datetime) -> bool:
        calls = self.calls
        async with calls.uow_factory.single_statements() as uow:
            return await claim(self, uow, now, now + calls.settings.claim_lease)
