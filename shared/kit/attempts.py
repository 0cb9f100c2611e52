"""The one attempt engine: every job that calls out of twostep for a row — a code's send, a
code's check, a webhook's delivery — is an attempt, and every attempt runs the same way.

1. *begin*: claim the row, marking a call as started, committed on its own, so that a crash
   leaves evidence — or settle it at once when no call is needed (past its deadline, nothing to
   send);
2. *call*, holding no database connection;
3. *settle*: record the answer, give up for good (a final refusal), or put the row back for a
   retry after a backoff — at the latest at its deadline, where the retry finds it too late and
   gives up. Each only while the claim is still the attempt's.

A redelivered or duplicated job finds nothing to claim and does nothing. What an attempt does
differently is its subclass's (``shared.verifications.sends``, ``…checks``,
``shared.webhooks.sender``); what each retries, and how soon, is its ``RetryPolicy``.
"""

from __future__ import annotations

import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

import structlog

from shared.errors import AttemptError, ProviderError, ProviderTransientError
from shared.kit import metrics
from shared.kit.clock import Clock
from shared.kit.db.base import JobRow
from shared.kit.db.repository import JobRows

log = structlog.get_logger(__name__)

U = TypeVar("U")
Row = TypeVar("Row", bound=JobRow)
Answer = TypeVar("Answer")
Jitter = Callable[[float, float], float]


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The job should run again after ``countdown`` seconds; its bookkeeping is committed."""

    countdown: float


class Wait(Exception):
    """The attempt cannot make its call now (the fleet's gate, another call on the same
    number): back to the queue for ``seconds``, without counting it as an attempt."""

    def __init__(self, seconds: float, why: str) -> None:
        super().__init__(f"{why}: wait {seconds:.2f}s")
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How soon an attempt is tried again: doubling from ``base_seconds`` up to
    ``max_seconds``, with "equal jitter" (never a zero wait, never two rows in lockstep).
    ``through_queue``: the job comes back by its own queue's countdown (short waits); without,
    the sweeper publishes it again when its next look is due (waits of up to an hour, longer
    than a broker should hold a message)."""

    base_seconds: float
    max_seconds: float
    through_queue: bool = True

    def backoff(self, attempts: int, retry_after: float | None, jitter: Jitter) -> float:
        ceiling = min(self.max_seconds, self.base_seconds * (1 << min(max(attempts - 1, 0), 30)))
        delay = ceiling / 2 + jitter(0, ceiling / 2)
        return delay if retry_after is None else max(delay, retry_after)


def error_of(exc: ProviderError) -> AttemptError:
    return AttemptError(exc.reason, exc.message, exc.provider_code)


class Attempt(ABC, Generic[U, Row, Answer]):
    """One attempt at one row's job: what a send, a check and a delivery do differently.
    ``U`` is the unit of work the job's repository lives on."""

    kind: ClassVar[str]
    # The log field naming the row: what ops search the logs by.
    id_field: ClassVar[str]
    claimed: Row

    def __init__(self, row_id: uuid.UUID) -> None:
        self.row_id = row_id
        self.lost_call_at: datetime | None = None
        self.log = log.bind(**{self.id_field: str(row_id)})

    @property
    def token(self) -> uuid.UUID:
        token = self.claimed.claim_token
        assert token is not None, "a claimed row carries its claim token"
        return token

    def took(self, row: Row, now: datetime) -> None:
        """Hold the row just claimed. The claim marks this call as started; a marker from
        before it is a lost call's: the call's answer never came, so look before acting."""
        self.claimed = row
        marker = row.provider_call_started_at
        self.lost_call_at = marker if marker is not None and marker < now else None

    @abstractmethod
    def rows(self, uow: U) -> JobRows[Row]: ...

    async def claim_row(self, uow: U, now: datetime, until: datetime) -> Row | None:
        """Claim the row in ``uow`` (its repository's ``claim``); an attempt that needs more
        than its row may read it in the same statement."""
        return await self.rows(uow).claim(self.row_id, now=now, until=until)

    @abstractmethod
    async def begin(self) -> bool:
        """Claim the row; False when there is nothing to call for (settled already)."""

    @abstractmethod
    async def call(self) -> Answer:
        """The call out; raises ``Wait``, ``ProviderTransientError`` (retried until the
        deadline) or another ``ProviderError`` (refused for good)."""

    @abstractmethod
    async def answered(self, answer: Answer) -> None: ...

    @abstractmethod
    async def refused(self, exc: ProviderError) -> None:
        """Refused for good (a final or permanent error)."""

    @abstractmethod
    async def give_up(self, error: AttemptError) -> None:
        """The deadline passed with no usable answer."""


@dataclass(frozen=True)
class Attempts(Generic[U]):
    """Runs attempts: one per job a worker takes."""

    uow_factory: Callable[[], AbstractAsyncContextManager[U]]
    clock: Clock
    policy: RetryPolicy
    # How long after its next look the sweeper takes a row for lost.
    requeue_after: timedelta
    jitter: Jitter = random.uniform

    async def run(self, job: Attempt[U, Any, Any]) -> RetryLater | None:
        if not await job.begin():
            return None
        try:
            answer = await job.call()
        except Wait as wait:
            return await self._requeue(job, wait.seconds)
        except ProviderTransientError as exc:
            return await self._retry_or_give_up(job, exc)
        except ProviderError as exc:
            await job.refused(exc)
            return None
        await job.answered(answer)
        return None

    async def _requeue(self, job: Attempt[U, Any, Any], wait: float) -> RetryLater | None:
        """Back to the queue for ``wait`` seconds; the attempt does not count: no call made."""
        metrics.PROVIDER_THROTTLE_REQUEUES.inc()
        now = self.clock.now()
        async with self.uow_factory() as uow:
            released = await job.rows(uow).release_unattempted(
                job.row_id,
                job.token,
                lost_call_at=job.lost_call_at,
                next_look=now + timedelta(seconds=wait) + self.requeue_after,
                now=now,
            )
        if not released:
            return None
        job.log.info("provider.throttled", requeued_for=round(wait, 2))
        return RetryLater(countdown=wait)

    async def _retry_or_give_up(
        self, job: Attempt[U, Any, Any], exc: ProviderTransientError
    ) -> RetryLater | None:
        """Put the row back to wait for a retry, at the latest at its deadline, or give up now
        if the deadline has passed. Either way the attempt and its error are committed first."""
        now = self.clock.now()
        left = (job.claimed.deadline_at - now).total_seconds()
        attempts = job.claimed.provider_attempts
        if left <= 0:
            await job.give_up(error_of(exc))
            job.log.warning(
                f"{job.kind}.gave_up", attempts=attempts, provider_code=exc.provider_code
            )
            return None
        delay = min(self.policy.backoff(attempts, exc.retry_after, self.jitter), left)
        next_look = now + timedelta(seconds=delay)
        if self.policy.through_queue:
            next_look += self.requeue_after  # the sweeper steps in only if the retry is lost
        async with self.uow_factory() as uow:
            released = await job.rows(uow).release_for_retry(
                job.row_id,
                job.token,
                error=error_of(exc),
                # A call whose answer was lost leaves its marker; a refused one leaves any
                # earlier lost call's marker in place: the retry must still look before it acts.
                lost_call_at=job.claimed.provider_call_started_at
                if exc.ambiguous
                else job.lost_call_at,
                next_look=next_look,
                now=now,
            )
        metrics.JOB_RETRIES.labels(job=job.kind).inc()
        job.log.warning(
            f"{job.kind}.retry",
            attempts=attempts,
            provider_code=exc.provider_code,
            status=exc.status,
            ambiguous=exc.ambiguous,
            retry_in=round(delay, 2),
        )
        return RetryLater(countdown=delay) if released and self.policy.through_queue else None


async def claim(job: Attempt[U, Row, Any], uow: U, now: datetime, until: datetime) -> bool:
    """Claim the job's row in ``uow`` (one statement, committed on its own, so a crash leaves
    the claim and its call marker behind), with whatever else the attempt reads with it."""
    row = await job.claim_row(uow, now, until)
    if row is None:
        job.log.info(f"{job.kind}.skipped", reason="not claimable")
        metrics.JOBS_SKIPPED.labels(job.kind).inc()
        return False
    job.took(row, now)
    return True
