"""One attempt at a job row's provider call: the shape every worker job of a verification takes.

An attempt *begins* (claims its row and marks a provider call as started, committed, so that a
crash leaves evidence), *calls* the provider through the fleet-wide gate holding no database
connection, then *settles*: it records the answer, gives up for good, or puts the row back for a
retry after a backoff — each only while its claim still holds. What a send and a check do
differently is written in their ``Attempt`` subclasses (``shared.services.sends``,
``shared.services.checks``); the skeleton that runs them is ``Delivery`` (``delivery.py``).
"""

from __future__ import annotations

import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

import structlog

from shared.errors import AttemptError, ProviderError
from shared.kit.db.repository import JobRows
from shared.kit.settings import Settings
from shared.unit_of_work import UnitOfWork
from shared.verifications.models import Verification, VerificationCheck

if TYPE_CHECKING:
    from shared.verifications.delivery import Delivery

log = structlog.get_logger(__name__)

Row = TypeVar("Row", Verification, VerificationCheck)
Answer = TypeVar("Answer")


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The job should run again after ``countdown`` seconds; its bookkeeping is committed."""

    countdown: float


class Throttled(Exception):
    """The gate asked for a longer wait than an attempt may hold its claim."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"throttled for {wait:.2f}s")
        self.wait = wait


class NotYet(Exception):
    """The attempt cannot call the provider yet (another call on the same number is in
    flight): back to the queue for ``wait`` seconds, without counting an attempt."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"not yet, for {wait:.2f}s")
        self.wait = wait


def backoff_seconds(settings: Settings, provider_attempts: int, retry_after: float | None) -> float:
    """Exponential with "equal jitter": never a zero wait, never two workers in lockstep."""
    ceiling = min(
        settings.retry_backoff_max_seconds,
        settings.retry_backoff_base_seconds * (1 << min(max(provider_attempts - 1, 0), 30)),
    )
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def error_of(exc: ProviderError) -> AttemptError:
    return AttemptError(exc.reason, exc.message, exc.provider_code)


class Attempt(ABC, Generic[Row, Answer]):
    """One attempt at one row's job: what a send and a check do differently."""

    kind: ClassVar[str]
    # The log field naming the row: what ops search the logs by.
    id_field: ClassVar[str]
    claimed: Row

    def __init__(self, delivery: Delivery, row_id: uuid.UUID) -> None:
        self.delivery = delivery
        self.row_id = row_id
        self.lost_call_at: datetime | None = None
        self.log = log.bind(**{self.id_field: str(row_id)})

    @property
    def token(self) -> uuid.UUID:
        token = self.claimed.claim_token
        assert token is not None, "a claimed row carries its claim token"
        return token

    def _took(self, row: Row, now: datetime) -> None:
        self.claimed = row
        marker = row.provider_call_started_at
        # The claim marks this call as started; a marker from before it is a lost call's.
        self.lost_call_at = marker if marker is not None and marker < now else None

    async def _claim(
        self,
        now: datetime,
        and_read: Callable[[UnitOfWork], Awaitable[None]] | None = None,
    ) -> bool:
        """Claim the row in one statement, committed on its own (a crash leaves the claim and
        its call marker behind), then ``and_read`` what else the attempt needs."""
        lease_end = now + self.delivery.settings.claim_lease
        async with self.delivery.uow_factory.single_statements() as uow:
            row = await self.rows(uow).claim(self.row_id, now=now, until=lease_end)
            if row is None:
                self.log.info(f"{self.kind}.skipped", reason="not claimable")
                return False
            self._took(row, now)
            if and_read is not None:
                await and_read(uow)
        return True

    @abstractmethod
    def rows(self, uow: UnitOfWork) -> JobRows[Row]: ...

    @abstractmethod
    async def begin(self) -> bool:
        """Claim the row; False when there is nothing to call the provider for."""

    @abstractmethod
    async def call(self) -> Answer: ...

    @abstractmethod
    async def answered(self, answer: Answer) -> None: ...

    @abstractmethod
    async def refused(self, exc: ProviderError) -> None:
        """The provider refused for good (a final or permanent error)."""

    @abstractmethod
    async def give_up(self, error: AttemptError) -> None:
        """The deadline passed with no usable answer."""
