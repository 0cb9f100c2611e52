"""Use cases on the worker's side: send a code (the first time or again) and check a code.

Both are attempts at a job row, run by one skeleton (``Delivery._attempt``) in three steps:

1. *begin*: claim the row and mark a provider call as started, committed, so a crash leaves
   evidence — or settle it at once when no call is needed (past its deadline, no code to check);
2. *call* the provider through the fleet-wide gate, holding no database connection;
3. *settle*: record the answer, give up for good, or put the row back for a retry after a
   backoff (at the latest at its deadline) — each only if the claim is still ours.

A redelivered or duplicated job finds nothing to claim and does nothing; a job whose earlier
call's answer was lost looks at the provider before it acts again. What differs between a send
and a check is in ``_Send`` and ``_Check``; everything else is written once.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar

import structlog

from shared import metrics
from shared.clock import Clock
from shared.codes import CodeStash
from shared.db.models import Verification, VerificationCheck
from shared.db.repository import CheckRepository, JobRows, VerificationRepository
from shared.db.session import UnitOfWork, UnitOfWorkFactory
from shared.domain import (
    AttemptError,
    Channel,
    CheckStatus,
    ErrorCode,
    EventType,
    VerificationStatus,
)
from shared.errors import (
    ProviderError,
    ProviderFinalError,
    ProviderTransientError,
    ServiceUnavailable,
)
from shared.limits import Lockout, Outcome, ProviderGate
from shared.services import audit, two_step
from shared.services.verifications import guesser_of
from shared.settings import Settings
from shared.verify.port import ProviderCheck, ProviderVerification, VerifyClient
from shared.views import change_of

log = structlog.get_logger(__name__)

T = TypeVar("T")
Row = TypeVar("Row", Verification, VerificationCheck)
Answer = TypeVar("Answer")

# Twilio's timestamps have one-second resolution and its clock is not ours.
_CLOCK_TOLERANCE = timedelta(seconds=5)
# Longest a job waits in-task at the gate before it goes back to the queue instead.
_MAX_INLINE_GATE_WAIT = 5.0
# Twilio answers the 6th check of a verification with 60202 and then deletes it.
_TWILIO_CHECKS_PER_VERIFICATION = 5
# A verification this close to its expiry may have expired at Twilio (clocks differ).
_EXPIRY_MARGIN = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The job should run again after ``countdown`` seconds; its bookkeeping is committed."""

    countdown: float


class _Throttled(Exception):
    def __init__(self, wait: float) -> None:
        super().__init__(f"throttled for {wait:.2f}s")
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


def _error_of(exc: ProviderError) -> AttemptError:
    return AttemptError(exc.reason, exc.message, exc.provider_code)


@dataclass(frozen=True)
class Delivery:
    """Built once per worker process."""

    uow_factory: UnitOfWorkFactory
    verify: VerifyClient
    stash: CodeStash
    gate: ProviderGate
    lockout: Lockout
    settings: Settings
    clock: Clock

    async def send_code(self, verification_id: uuid.UUID) -> RetryLater | None:
        return await self._attempt(_Send(self, verification_id))

    async def check_code(self, check_id: uuid.UUID) -> RetryLater | None:
        return await self._attempt(_Check(self, check_id))

    async def _attempt(self, job: _Job[Any, Any]) -> RetryLater | None:
        if not await job.begin():
            return None
        try:
            answer = await job.call()
        except _Throttled as throttled:
            return await self._requeue(job, throttled.wait)
        except ProviderTransientError as exc:
            return await self._retry_or_give_up(job, exc)
        except ProviderError as exc:
            await job.refused(exc)
            return None
        await job.answered(answer)
        return None

    async def through_gate(self, call: Callable[[], Awaitable[T]]) -> T:
        """Make one provider call in a slot of the fleet-wide gate."""
        slot = await self._enter_gate()
        failed = True
        try:
            answer = await call()
            failed = False
            return answer
        except ProviderError as exc:
            failed = isinstance(exc, ProviderTransientError)  # a refusal is an answer
            raise
        finally:
            # A slot we cannot give back frees itself when its lease runs out.
            with contextlib.suppress(ServiceUnavailable):
                await self.gate.leave(slot, failed=failed)

    async def _enter_gate(self) -> str:
        """Wait at the gate in-task while the wait is short; a longer one sends the job back to
        the queue (``_Throttled``) without counting it as an attempt."""
        budget = min(_MAX_INLINE_GATE_WAIT, self.settings.claim_lease_seconds / 3)
        waited = 0.0
        while True:
            try:
                entered = await self.gate.enter()
            except ServiceUnavailable as exc:
                # No gate, no call: the fleet must never exceed the account's rate.
                raise ProviderTransientError("the provider gate is unavailable") from exc
            if isinstance(entered, str):
                return entered
            if waited + entered > budget:
                raise _Throttled(entered)
            metrics.PROVIDER_THROTTLE_WAITS.inc()
            # Jitter: the jobs refused together must not all come back together.
            wait = entered * random.uniform(1.0, 1.5)
            await self.clock.sleep(wait)
            waited += wait

    async def _requeue(self, job: _Job[Any, Any], wait: float) -> RetryLater | None:
        """The gate asked for a longer wait than the claim allows: back to the queue, and the
        attempt does not count — no provider call was made."""
        metrics.PROVIDER_THROTTLE_REQUEUES.inc()
        now = self.clock.now()
        async with self.uow_factory() as uow:
            released = await job.rows(uow).release_unattempted(
                job.row_id,
                job.token,
                lost_call_at=job.lost_call_at,
                next_look=now + timedelta(seconds=wait) + self.settings.requeue_after,
                now=now,
            )
        if not released:
            return None
        job.log.info("provider.throttled", requeued_for=round(wait, 2))
        return RetryLater(countdown=wait)

    async def _retry_or_give_up(
        self, job: _Job[Any, Any], exc: ProviderTransientError
    ) -> RetryLater | None:
        """Put the row back to wait for a retry, at the latest at its deadline (where the retry
        finds it too late and gives up), or give up now if the deadline has passed. Either way
        the attempt and its error are committed before anything else."""
        now = self.clock.now()
        left = (job.claimed.deadline_at - now).total_seconds()
        attempts = job.claimed.provider_attempts
        if left <= 0:
            await job.give_up(_error_of(exc))
            job.log.warning(
                f"{job.kind}.gave_up", attempts=attempts, provider_code=exc.provider_code
            )
            return None
        delay = min(backoff_seconds(self.settings, attempts, exc.retry_after), left)
        async with self.uow_factory() as uow:
            released = await job.rows(uow).release_for_retry(
                job.row_id,
                job.token,
                error=_error_of(exc),
                # A call whose answer was lost leaves its marker; a refused one leaves any
                # earlier lost call's marker in place: the retry must still look before it acts.
                lost_call_at=job.claimed.provider_call_started_at
                if exc.ambiguous
                else job.lost_call_at,
                next_look=now + timedelta(seconds=delay) + self.settings.requeue_after,
                now=now,
            )
        metrics.JOB_RETRIES.labels(job=job.kind).inc()
        job.log.warning(
            f"{job.kind}.provider_error",
            attempts=attempts,
            provider_code=exc.provider_code,
            status=exc.status,
            ambiguous=exc.ambiguous,
            retry_in=round(delay, 2),
        )
        return RetryLater(countdown=delay) if released else None


class _Job(ABC, Generic[Row, Answer]):
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


class _Send(_Job[Verification, ProviderVerification]):
    kind = "send"
    id_field = "verification_id"

    def rows(self, uow: UnitOfWork) -> VerificationRepository:
        return uow.verifications

    async def begin(self) -> bool:
        now = self.delivery.clock.now()
        if not await self._claim(now):
            return False
        if now < self.claimed.deadline_at:
            return True
        await self.give_up(
            AttemptError(ErrorCode.PROVIDER_UNAVAILABLE, "not sent before the deadline")
        )
        self.log.warning("send.deadline_passed", resend=self.resend)
        return False

    @property
    def resend(self) -> bool:
        return self.claimed.status is VerificationStatus.PENDING

    @property
    def channel(self) -> Channel:
        return self.claimed.resend_channel or self.claimed.channel

    async def call(self) -> ProviderVerification:
        delivery, row = self.delivery, self.claimed
        if self.lost_call_at is not None:
            existing = await self._sent_by_the_lost_call(self.lost_call_at)
            if existing is not None:
                return existing
        return await delivery.through_gate(
            lambda: delivery.verify.start_verification(row.to_e164, self.channel, row.locale)
        )

    async def _sent_by_the_lost_call(self, lost_call_at: datetime) -> ProviderVerification | None:
        delivery, to = self.delivery, self.claimed.to_e164
        try:
            existing = await delivery.through_gate(
                lambda: delivery.verify.find_pending_verification(to)
            )
        except ProviderTransientError as exc:
            # We still do not know whether the lost call went out: keep looking next time.
            exc.ambiguous = True
            raise
        last_sent_at = existing.last_sent_at if existing is not None else None
        if last_sent_at is not None and last_sent_at >= lost_call_at - _CLOCK_TOLERANCE:
            metrics.RECONCILIATIONS.labels(job="send").inc()
            self.log.info("send.reconciled", note="the earlier call went through")
            return existing
        self.lost_call_at = None  # the provider says it sent nothing since: nothing was lost
        return None

    async def answered(self, answer: ProviderVerification) -> None:
        delivery = self.delivery
        async with delivery.uow_factory() as uow:
            now = delivery.clock.now()  # once it is our turn to write: when the row changes
            # Never in the past: a clock far behind ours must not make the code useless at once.
            expires_at = max(
                answer.created_at + delivery.settings.code_lifetime, now + timedelta(seconds=30)
            )
            sent = await uow.verifications.record_sent(
                self.row_id,
                self.token,
                provider_sid=answer.sid,
                channel=self.channel,
                expires_at=expires_at,
                now=now,
            )
            if sent is None:
                self.log.warning("send.outcome_dropped", note="taken over or ended meanwhile")
                return
            await audit.record_for(
                uow,
                EventType.VERIFICATION_SENT,
                self.claimed,
                channel=self.channel.value,
                resend=self.resend,
            )
            uow.notify_after_commit(change_of(sent))
        if not self.resend:
            metrics.TIME_TO_PENDING.observe((now - self.claimed.created_at).total_seconds())
        self.log.info("send.pending", attempts=self.claimed.provider_attempts, resend=self.resend)

    async def refused(self, exc: ProviderError) -> None:
        async with self.delivery.uow_factory() as uow:
            await self._give_up_in(uow, _error_of(exc))
        self.log.warning(
            "send.failed",
            reason=exc.reason.value,
            provider_code=exc.provider_code,
            resend=self.resend,
        )

    async def give_up(self, error: AttemptError) -> None:
        async with self.delivery.uow_factory() as uow:
            await self._give_up_in(uow, error)

    async def _give_up_in(self, uow: UnitOfWork, error: AttemptError) -> None:
        gave_up = await uow.verifications.give_up_send(
            self.row_id, self.token, error=error, now=self.delivery.clock.now()
        )
        if gave_up is not None:
            failed = (
                EventType.VERIFICATION_RESEND_FAILED
                if self.resend
                else EventType.VERIFICATION_FAILED
            )
            await audit.record_for(uow, failed, self.claimed, reason=error.reason.value)
            uow.notify_after_commit(change_of(gave_up))


class _Check(_Job[VerificationCheck, ProviderCheck]):
    kind = "check"
    id_field = "check_id"
    verification: Verification
    code: str

    def rows(self, uow: UnitOfWork) -> CheckRepository:
        return uow.checks

    async def begin(self) -> bool:
        delivery = self.delivery
        code = await delivery.stash.get(self.row_id)
        now = delivery.clock.now()
        if not await self._claim(now, and_read=self._read_verification):
            return False
        refusal = _refusal(self.claimed, self.verification, code, now)
        if refusal is None:
            assert code is not None
            self.code = code
            return True
        async with delivery.uow_factory() as uow:
            await self._refuse_in(uow, *refusal, now=now)
        await delivery.stash.discard(self.row_id)
        await self._settle_guess(Outcome.VOID)
        return False

    async def _read_verification(self, uow: UnitOfWork) -> None:
        verification = await uow.verifications.get(self.claimed.verification_id)
        assert verification is not None
        self.verification = verification
        self.log = self.log.bind(verification_id=str(verification.id))

    async def _refuse_in(
        self, uow: UnitOfWork, status: CheckStatus, error: AttemptError, *, now: datetime
    ) -> None:
        refused = await uow.checks.finish(
            self.row_id, self.token, status=status, error=error, now=now
        )
        if refused is not None:
            uow.notify_after_commit(change_of(refused))
            if error.reason is ErrorCode.CODE_UNAVAILABLE:
                # The provider never saw this attempt; give it back to the user.
                await uow.verifications.give_back_check_attempt(self.verification.id, now)
        self.log.info("check.refused", status=status.value, reason=error.reason.value)

    async def call(self) -> ProviderCheck:
        delivery, code = self.delivery, self.code
        sid = self.verification.provider_sid
        assert sid is not None  # _refusal refuses a verification that was never sent
        return await delivery.through_gate(lambda: delivery.verify.check_code(sid, code))

    async def answered(self, answer: ProviderCheck, *, inferred: bool = False) -> None:
        delivery = self.delivery
        status = CheckStatus.APPROVED if answer.approved else CheckStatus.REJECTED
        async with delivery.uow_factory() as uow:
            now = delivery.clock.now()
            finished = await uow.checks.finish(
                self.row_id, self.token, status=status, error=None, now=now
            )
            if finished is None:
                return
            uow.notify_after_commit(change_of(finished))
            used_up = False
            if answer.approved:
                await self._approve(uow, now, inferred=inferred)
            else:
                used_up = await self._reject(uow, now)
        metrics.TIME_TO_DECISION.observe((now - self.claimed.created_at).total_seconds())
        if inferred:
            metrics.RECONCILIATIONS.labels(job="check").inc()
        await delivery.stash.discard(self.row_id)
        self.log.info("check.answered", approved=answer.approved, inferred=inferred)
        await self._settle_guess(Outcome.RIGHT if answer.approved else Outcome.WRONG)
        if used_up:
            await self._end_at_provider()

    async def _approve(self, uow: UnitOfWork, now: datetime, *, inferred: bool) -> None:
        verification = self.verification
        approved = await uow.verifications.approve(verification.id, now)
        if approved is not None:
            uow.notify_after_commit(change_of(approved))
            await audit.record_for(
                uow,
                EventType.VERIFICATION_APPROVED,
                verification,
                inferred=True if inferred else None,
            )
            await two_step.on_verification_approved(
                uow,
                verification,
                now,
                one_user_per_phone=self.delivery.settings.one_user_per_phone,
            )

    async def _reject(self, uow: UnitOfWork, now: datetime) -> bool:
        """Record a wrong code; True when it used up the verification's last check."""
        verification = self.verification
        current = await uow.verifications.get(verification.id)
        assert current is not None
        await audit.record_for(
            uow, EventType.CHECK_REJECTED, verification, attempt=current.check_attempts
        )
        if current.check_attempts < self.delivery.settings.max_check_attempts:
            return False
        used_up = await uow.verifications.end_pending(
            verification.id,
            VerificationStatus.MAX_ATTEMPTS_REACHED,
            AttemptError(
                ErrorCode.MAX_CHECK_ATTEMPTS_REACHED, "every allowed check was a wrong code"
            ),
            now,
        )
        if used_up is None:
            return False
        uow.notify_after_commit(change_of(used_up))
        await audit.record_for(uow, EventType.VERIFICATION_MAX_ATTEMPTS, verification)
        return True

    async def _end_at_provider(self) -> None:
        """Twilio keeps a verification pending after its last wrong check, and a new one to the
        same number within its lifetime would re-send that code with no check left: a user who
        was locked out could not log in again until it expired. Best effort: if this fails, the
        next verification to the number ends as max_attempts_reached, as before."""
        delivery, sid = self.delivery, self.verification.provider_sid
        assert sid is not None
        try:
            await delivery.through_gate(lambda: delivery.verify.cancel_verification(sid))
        except (ProviderError, _Throttled, ServiceUnavailable) as exc:
            self.log.warning("check.provider_cancel_failed", error=type(exc).__name__)

    async def refused(self, exc: ProviderError) -> None:
        if await self._lost_answer_was_an_approval(exc):
            await self.answered(ProviderCheck(approved=True), inferred=True)
            return
        check_status, verification_status = _ending_for(exc)
        delivery, verification = self.delivery, self.verification
        error = _error_of(exc)
        async with delivery.uow_factory() as uow:
            now = delivery.clock.now()
            finished = await uow.checks.finish(
                self.row_id, self.token, status=check_status, error=error, now=now
            )
            if finished is None:
                return
            uow.notify_after_commit(change_of(finished))
            ended = verification_status and await uow.verifications.end_pending(
                verification.id, verification_status, error, now
            )
            if ended:
                uow.notify_after_commit(change_of(ended))
                if verification_status is VerificationStatus.MAX_ATTEMPTS_REACHED:
                    await audit.record_for(uow, EventType.VERIFICATION_MAX_ATTEMPTS, verification)
        await delivery.stash.discard(self.row_id)
        self.log.info("check.ended", reason=exc.reason.value, provider_code=exc.provider_code)
        # Twilio's 60202 answers a wrong 6th guess; anything else says nothing about the code.
        max_attempts = verification_status is VerificationStatus.MAX_ATTEMPTS_REACHED
        await self._settle_guess(Outcome.WRONG if max_attempts else Outcome.VOID)

    async def _lost_answer_was_an_approval(self, exc: ProviderError) -> bool:
        """Twilio deletes a verification the moment a check approves it. So when an earlier call
        of this very check lost its answer and Twilio now says the verification is gone, that
        call approved it — unless the verification may have expired or used up its checks at
        Twilio, which our own records rule out here."""
        if not (isinstance(exc, ProviderFinalError) and exc.provider_code == 20404):
            return False
        expires_at = self.verification.expires_at
        if self.lost_call_at is None or expires_at is None:
            return False
        if self.delivery.clock.now() >= expires_at - _EXPIRY_MARGIN:
            return False
        async with self.delivery.uow_factory() as uow:
            calls = await uow.checks.provider_calls_for(self.verification.id)
        # ``calls`` counts this retry too: the lost call was at most Twilio's 5th check.
        return calls - 1 <= _TWILIO_CHECKS_PER_VERIFICATION

    async def give_up(self, error: AttemptError) -> None:
        async with self.delivery.uow_factory() as uow:
            failed = await uow.checks.finish(
                self.row_id,
                self.token,
                status=CheckStatus.FAILED,
                error=error,
                now=self.delivery.clock.now(),
            )
            if failed is not None:
                uow.notify_after_commit(change_of(failed))
        await self.delivery.stash.discard(self.row_id)
        await self._settle_guess(Outcome.VOID)

    async def _settle_guess(self, outcome: Outcome) -> None:
        """Settle the failure this check reserved in the lockout when it was accepted."""
        try:
            lock = await self.delivery.lockout.settle(
                guesser_of(self.verification), str(self.row_id), outcome
            )
        except ServiceUnavailable:
            # The outcome is recorded; only the lockout missed it. Its reservation expires on
            # its own, and the API refuses checks while Redis is down: nobody guesses uncounted.
            self.log.error("check.lockout_unrecorded")
            return
        if lock is not None:
            self.log.warning("user.locked", seconds=lock.seconds, hard=lock.hard)
            async with self.delivery.uow_factory() as uow:
                await audit.record_for(
                    uow, EventType.USER_LOCKED, self.verification, **two_step.lock_detail(lock)
                )


def _refusal(
    check: VerificationCheck, verification: Verification, code: str | None, now: datetime
) -> tuple[CheckStatus, AttemptError] | None:
    """Why a check needs no provider call, if it does not."""
    if now >= check.deadline_at:
        return CheckStatus.FAILED, AttemptError(
            ErrorCode.PROVIDER_UNAVAILABLE, "not checked before the check deadline"
        )
    if verification.status is not VerificationStatus.PENDING or verification.provider_sid is None:
        if verification.status is VerificationStatus.MAX_ATTEMPTS_REACHED:
            return CheckStatus.MAX_ATTEMPTS_REACHED, AttemptError(
                ErrorCode.MAX_CHECK_ATTEMPTS_REACHED, "the verification used all its checks"
            )
        return CheckStatus.EXPIRED, AttemptError(
            ErrorCode.VERIFICATION_EXPIRED, f"the verification is {verification.status.value}"
        )
    if code is None:
        return CheckStatus.FAILED, AttemptError(
            ErrorCode.CODE_UNAVAILABLE, "the submitted code was lost; submit it again"
        )
    return None


def _ending_for(exc: ProviderError) -> tuple[CheckStatus, VerificationStatus | None]:
    """What a final or permanent provider error means for the check and its verification."""
    if isinstance(exc, ProviderFinalError):
        if exc.reason is ErrorCode.MAX_CHECK_ATTEMPTS_REACHED:
            return CheckStatus.MAX_ATTEMPTS_REACHED, VerificationStatus.MAX_ATTEMPTS_REACHED
        if exc.reason is ErrorCode.VERIFICATION_EXPIRED:
            # The provider no longer holds the verification (expired, or used up elsewhere).
            return CheckStatus.EXPIRED, VerificationStatus.EXPIRED
    return CheckStatus.FAILED, None
