"""Checking a code the user typed against its verification at the provider.

Only the provider's word approves: an answer, or — when a check's answer was lost and the
provider then no longer holds the verification — its record of the verification's sends (Twilio's
Verify Attempts API), which says whether it was approved. Nothing is approved by inference.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from shared.audit.domain import EventType
from shared.errors import (
    AttemptError,
    ErrorCode,
    ProviderError,
    ProviderFinalError,
    ProviderTransientError,
    ServiceUnavailable,
)
from shared.kit import metrics
from shared.kit.attempts import error_of
from shared.limits.ports import Outcome
from shared.unit_of_work import UnitOfWork
from shared.verifications.check_repository import CheckRepository
from shared.verifications.domain import (
    CheckStatus,
    Purpose,
    VerificationMove,
    VerificationStatus,
)
from shared.verifications.events import event_for, record_for, record_lock, subject_of
from shared.verifications.models import Verification, VerificationCheck
from shared.verifications.passkeys import check_credential
from shared.verifications.provider_attempt import VerificationAttempt
from shared.verifications.service import guesser_of
from shared.verifications.totp import (
    CODE_VALID_SECONDS,
    code_use,
    entity_of,
    remember_factor,
)
from shared.verifications.views import change_of
from shared.verify.port import ProviderCheck


class Check(VerificationAttempt[VerificationCheck, ProviderCheck]):
    kind = "check"
    id_field = "check_id"
    verification: Verification
    code: str
    service: str

    def rows(self, uow: UnitOfWork) -> CheckRepository:
        return uow.checks

    async def begin(self) -> bool:
        calls = self.calls
        code = await calls.stash.get(self.row_id)
        now = calls.clock.now()
        if not await self._claim(now):
            return False
        refusal = _refusal(self.claimed, self.verification, code, now)
        if refusal is None:
            assert code is not None
            self.code = code
            self.service = await self._service_of(self.verification)
            return True
        async with calls.uow_factory() as uow:
            await self._refuse_in(uow, *refusal, now=now)
        await self._settle_and_forget(Outcome.VOID)
        return False

    async def _service_of(self, verification: Verification) -> str:
        if verification.provider_service_sid is not None:
            return verification.provider_service_sid
        # Sent before verifications remembered their service: the tenant's.
        return (await self.calls.tenants.profile(verification.tenant_id)).service_sid

    async def claim_row(
        self, uow: UnitOfWork, now: datetime, until: datetime
    ) -> VerificationCheck | None:
        """The check, claimed, and its verification, read in the same statement."""
        claimed = await uow.checks.claim_with_verification(self.row_id, now=now, until=until)
        if claimed is None:
            return None
        check, self.verification = claimed
        self.log = self.log.bind(verification_id=str(self.verification.id))
        return check

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
        if self.verification.channel.takes_credential:
            answer = await check_credential(self.calls, self.verification, self.service, self.code)
            if not answer.approved and self.lost_call_at is not None:
                # The lost call may have approved it, and Twilio refuses a signature twice: no
                # word on this one. The check fails (no wrong guess); the user signs a new one.
                raise ProviderFinalError(
                    "an earlier try's answer was lost and Twilio took the signature then: "
                    "start a new challenge",
                    reason=ErrorCode.PROVIDER_UNAVAILABLE,
                )
            return answer
        if not self.verification.channel.sends_code:
            return await self._app_call()
        calls, code = self.calls, self.code
        sid = self.verification.provider_sid
        assert sid is not None  # _refusal refuses a verification that was never sent
        try:
            return await calls.through_gate(
                lambda: calls.verify.check_code(self.service, sid, code)
            )
        except ProviderFinalError as exc:
            if self._answer_may_be_lost(exc) and await self._approved_by_the_lost_call():
                return ProviderCheck(approved=True)
            raise

    async def _app_call(self) -> ProviderCheck:
        """An authenticator app's code: the enrolment's first one verifies the factor (made at
        Twilio now if it is not yet), a login's answers a challenge of it. Approved once."""
        calls, verification, code = self.calls, self.verification, self.code
        entity = entity_of(calls.keyring, verification.tenant_id, str(verification.user_id))
        factor_sid = verification.destination or await self._make_factor(entity)
        verify = calls.verify
        if verification.purpose is Purpose.ENROLLMENT:
            answer = await calls.through_gate(
                lambda: verify.verify_totp_factor(self.service, entity, factor_sid, code)
            )
        else:
            answer = await calls.through_gate(
                lambda: verify.check_totp(self.service, entity, factor_sid, code)
            )
        use = code_use(calls.keyring, factor_sid, code)
        if answer.approved and not await calls.stash.claim_once(use, CODE_VALID_SECONDS):
            self.log.warning("check.code_replayed")
            return ProviderCheck(approved=False)
        return answer

    async def _make_factor(self, entity: str) -> str:
        """The enrolment's factor, made at Twilio with the secret the user was shown; the
        secret is dropped as soon as Twilio holds it."""
        calls, verification = self.calls, self.verification
        secret = await calls.stash.get(verification.id)
        if secret is None:
            raise ProviderFinalError(
                "the enrolment's secret is gone (expired): enrol the app again",
                reason=ErrorCode.VERIFICATION_EXPIRED,
            )
        sid = await calls.through_gate(
            lambda: calls.verify.create_totp_factor(self.service, entity, "twostep", secret)
        )
        async with calls.uow_factory() as uow:
            await remember_factor(uow, verification.id, sid)
        await calls.stash.discard(verification.id)
        verification.destination = sid
        return sid

    async def answered(self, answer: ProviderCheck) -> None:
        calls = self.calls
        # An approval that verifies no factor is one statement (``finish_approving``): the
        # approval's listeners write only for an enrolment (``on_verification_approved``).
        factory, verification = calls.uow_factory, self.verification
        if answer.approved and verification.purpose is not Purpose.ENROLLMENT:
            unit = await factory.for_one_statement(verification.tenant_id)
        else:
            unit = factory()
        async with unit as uow:
            now = calls.clock.now()
            if answer.approved:
                finished, approved = await uow.checks.finish_approving(
                    self.row_id,
                    self.token,
                    event_for(uow, EventType.VERIFICATION_APPROVED, self.verification),
                    now,
                )
            else:
                finished = await uow.checks.finish(
                    self.row_id, self.token, status=CheckStatus.REJECTED, error=None, now=now
                )
            if finished is None:
                return
            uow.notify_after_commit(change_of(finished))
            self._settle_before_waking(uow, Outcome.RIGHT if answer.approved else Outcome.WRONG)
            used_up = False
            if answer.approved:
                await self._approved(uow, approved, now)
            else:
                used_up = await self._reject(uow, now)
        metrics.TIME_TO_DECISION.labels(channel=self.verification.channel.value).observe(
            (now - self.claimed.created_at).total_seconds()
        )
        self.log.info("check.answered", approved=answer.approved)
        if used_up:
            # Twilio keeps a verification pending after its last wrong check: a new one to the
            # number would get its code again, with no check left.
            await calls.close_at_provider(self.verification, quietly=True)

    async def _approved(
        self, uow: UnitOfWork, approved: Verification | None, now: datetime
    ) -> None:
        """The verification approved with the check (None: it was no longer pending)."""
        if approved is not None:
            uow.notify_after_commit(change_of(approved))
            for listener in self.calls.on_approved:
                await listener(uow, self.verification, now)

    async def _reject(self, uow: UnitOfWork, now: datetime) -> bool:
        """Record a wrong code; True when it used up the verification's last check."""
        verification = self.verification
        current = await uow.verifications.get(verification.id)
        assert current is not None
        await record_for(
            uow, EventType.CHECK_REJECTED, verification, attempt=current.check_attempts
        )
        if current.check_attempts < self.calls.settings.max_check_attempts:
            return False
        used_up = await uow.verifications.end_pending(
            verification.id,
            VerificationMove.USE_UP,
            AttemptError(
                ErrorCode.MAX_CHECK_ATTEMPTS_REACHED, "every allowed check was a wrong code"
            ),
            now,
            provider_open=True,
        )
        if used_up is None:
            return False
        uow.notify_after_commit(change_of(used_up))
        await record_for(uow, EventType.VERIFICATION_MAX_ATTEMPTS, verification)
        return True

    async def refused(self, exc: ProviderError) -> None:
        check_status, verification_move = _ending_for(exc)
        calls, verification = self.calls, self.verification
        error = error_of(exc)
        async with calls.uow_factory() as uow:
            now = calls.clock.now()
            finished = await uow.checks.finish(
                self.row_id, self.token, status=check_status, error=error, now=now
            )
            if finished is None:
                return
            uow.notify_after_commit(change_of(finished))
            # Twilio's 60202 answers a wrong 6th guess; anything else says nothing about the code.
            max_attempts = verification_move is VerificationMove.USE_UP
            self._settle_before_waking(uow, Outcome.WRONG if max_attempts else Outcome.VOID)
            # The provider no longer holds it: it ended there (used up, expired, gone).
            ended = verification_move and await uow.verifications.end_pending(
                verification.id, verification_move, error, now, provider_open=False
            )
            if ended:
                uow.notify_after_commit(change_of(ended))
                if max_attempts:
                    await record_for(uow, EventType.VERIFICATION_MAX_ATTEMPTS, verification)
        self.log.info("check.ended", reason=exc.reason.value, provider_code=exc.provider_code)

    def _answer_may_be_lost(self, exc: ProviderError) -> bool:
        """Twilio deletes a verification the moment a check approves it, and also when it
        expires or is canceled: after an earlier call of this check lost its answer, "gone"
        may mean that call approved it — or not. Only Twilio's record can tell."""
        return (
            self.lost_call_at is not None
            and isinstance(exc, ProviderFinalError)
            and exc.provider_code == 20404
        )

    async def _approved_by_the_lost_call(self) -> bool:
        calls, sid = self.calls, self.verification.provider_sid
        assert sid is not None
        try:
            approved = await calls.through_gate(
                lambda: calls.verify.was_approved(self.service, sid)
            )
        except ProviderTransientError as exc:
            # Still unknown: the attempt engine retries the check, which looks again.
            exc.ambiguous = True
            raise
        if approved:
            metrics.RECONCILIATIONS.labels(job="check").inc()
            self.log.info("check.reconciled", note="Twilio's record says it was approved")
        return approved

    async def give_up(self, error: AttemptError) -> None:
        async with self.calls.uow_factory() as uow:
            failed = await uow.checks.finish(
                self.row_id,
                self.token,
                status=CheckStatus.FAILED,
                error=error,
                now=self.calls.clock.now(),
            )
            if failed is not None:
                uow.notify_after_commit(change_of(failed))
        await self._settle_and_forget(Outcome.VOID)

    def _settle_before_waking(self, uow: UnitOfWork, outcome: Outcome) -> None:
        """Once the outcome commits, count it in the lockout before anyone waiting on the check
        is woken: whoever reads the answer finds a lock it caused already in force."""

        async def settle() -> None:
            await self._settle_and_forget(outcome)

        uow.after_commit(settle)

    async def _settle_and_forget(self, outcome: Outcome) -> None:
        """Settle the guess and drop the code, which nothing needs any more: together, in one
        round trip. A code Redis failed to drop expires with its check."""
        settled, dropped = await asyncio.gather(
            self._settle_guess(outcome),
            self.calls.stash.discard(self.row_id),
            return_exceptions=True,
        )
        if isinstance(dropped, Exception):
            self.log.warning("check.code_not_dropped", error=type(dropped).__name__)
        if isinstance(settled, BaseException):
            raise settled

    async def _settle_guess(self, outcome: Outcome) -> None:
        """Settle the failure this check reserved in the lockout when it was accepted."""
        try:
            lock = await self.calls.lockout.settle(
                guesser_of(self.verification), str(self.row_id), outcome
            )
        except ServiceUnavailable:
            # The outcome is recorded; only the lockout missed it. Its reservation expires on
            # its own, and the API refuses checks while Redis is down: nobody guesses uncounted.
            self.log.error("check.lockout_unrecorded")
            return
        if lock is not None:
            self.log.warning("user.locked", seconds=lock.seconds, hard=lock.hard)
            async with self.calls.uow_factory() as uow:
                await record_lock(uow, subject_of(self.verification), lock)


def _refusal(
    check: VerificationCheck, verification: Verification, code: str | None, now: datetime
) -> tuple[CheckStatus, AttemptError] | None:
    """Why a check needs no provider call, if it does not."""
    if now >= check.deadline_at:
        return CheckStatus.FAILED, AttemptError(
            ErrorCode.PROVIDER_UNAVAILABLE, "not checked before the check deadline"
        )
    # An app's code is never sent: its verification has no provider SID.
    never_sent = verification.provider_sid is None and verification.channel.starts_at_provider
    if verification.status is not VerificationStatus.PENDING or never_sent:
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


def _ending_for(exc: ProviderError) -> tuple[CheckStatus, VerificationMove | None]:
    """What a final or permanent provider error means for the check and its verification."""
    if isinstance(exc, ProviderFinalError):
        if exc.reason is ErrorCode.MAX_CHECK_ATTEMPTS_REACHED:
            return CheckStatus.MAX_ATTEMPTS_REACHED, VerificationMove.USE_UP
        if exc.reason is ErrorCode.VERIFICATION_EXPIRED:
            # The provider no longer holds the verification (expired, used up or canceled).
            return CheckStatus.EXPIRED, VerificationMove.EXPIRE
    return CheckStatus.FAILED, None
