"""Use cases on the worker's side: send a code (first time or again), check a code.

Each runs as three steps on purpose, each its own transaction: claim the row (committed, so a
crash leaves evidence), call the provider (holding no database connection), write the outcome
(only if the claim is still ours and nobody moved the row meanwhile). A redelivered or duplicated
job finds nothing to claim and does nothing; a job whose earlier call's outcome was lost looks at
the provider before sending. Every provider call first takes a slot from the fleet-wide throttle.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog

from shared import metrics
from shared.clock import utcnow
from shared.codes import CodeStash
from shared.db.models import Verification, VerificationCheck
from shared.db.session import UnitOfWork
from shared.domain import Channel, CheckStatus, ErrorCode, EventType, VerificationStatus
from shared.errors import (
    ProviderError,
    ProviderFinalError,
    ProviderTransientError,
    ServiceUnavailable,
)
from shared.limits import Lockout, ProviderThrottle
from shared.services import audit, two_step
from shared.settings import Settings
from shared.verify.port import ProviderCheck, ProviderVerification, VerifyClient

log = structlog.get_logger(__name__)

# Twilio's timestamps have one-second resolution and its clock is not ours.
_CLOCK_TOLERANCE = timedelta(seconds=5)
_MESSAGE_LIMIT = 300
# Longest a job waits in-task for the throttle before it goes back to the queue instead.
_MAX_INLINE_THROTTLE_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class RetryLater:
    """The job should run again after ``countdown`` seconds; its bookkeeping is committed."""

    countdown: float


@dataclass(frozen=True, slots=True)
class DeliveryDeps:
    uow_factory: Callable[[], UnitOfWork]
    verify: VerifyClient
    stash: CodeStash
    settings: Settings
    throttle: ProviderThrottle
    lockout: Lockout


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


def _take_provider_slot(deps: DeliveryDeps) -> None:
    """Wait for the fleet-wide throttle in-task while the wait is short; a longer one sends the
    job back to the queue (``_Throttled``) without counting it as an attempt."""
    budget = min(_MAX_INLINE_THROTTLE_WAIT, deps.settings.claim_lease_seconds / 3)
    waited = 0.0
    while True:
        try:
            wait = deps.throttle.reserve()
        except ServiceUnavailable as exc:
            # No throttle, no call: the fleet must never exceed the account's rate.
            raise ProviderTransientError("the provider throttle is unavailable") from exc
        if wait <= 0:
            return
        if waited + wait > budget:
            raise _Throttled(wait)
        metrics.PROVIDER_THROTTLE_WAITS.inc()
        time.sleep(wait)
        waited += wait


def _error_values(exc: ProviderError) -> dict[str, object]:
    return {
        "error_code": exc.reason.value,
        "error_message": exc.message[:_MESSAGE_LIMIT],
        "provider_error_code": exc.provider_code,
    }


@dataclass(frozen=True, slots=True)
class _Send:
    """What differs between a first send and a re-send of a pending verification."""

    resend: bool
    channel: Channel

    @property
    def held_status(self) -> VerificationStatus:
        return VerificationStatus.PENDING if self.resend else VerificationStatus.SENDING

    @property
    def waiting_status(self) -> VerificationStatus:
        return VerificationStatus.PENDING if self.resend else VerificationStatus.QUEUED

    def giving_up(self, now: datetime) -> dict[str, object]:
        # A re-send that cannot be done is dropped: the code sent first still works.
        if self.resend:
            return {"resend_channel": None}
        return {"status": VerificationStatus.FAILED, "completed_at": now}

    def record_failure(
        self, uow: UnitOfWork, verification: Verification, reason: ErrorCode
    ) -> None:
        event = (
            EventType.VERIFICATION_RESEND_FAILED if self.resend else EventType.VERIFICATION_FAILED
        )
        audit.record_for(uow, event, verification, reason=reason.value)


def send_code(deps: DeliveryDeps, verification_id: uuid.UUID) -> RetryLater | None:
    settings = deps.settings
    now = utcnow()
    bound = log.bind(verification_id=str(verification_id))
    with deps.uow_factory() as uow:
        token = uow.verifications.claim(verification_id, now=now, until=now + settings.claim_lease)
        if token is None:
            bound.info("send.skipped", reason="not claimable")
            return None
        verification = uow.verifications.get(verification_id)
        assert verification is not None
        resend = verification.status is VerificationStatus.PENDING
        send = _Send(resend, verification.resend_channel or verification.channel)
        if now >= verification.deadline_at:
            if uow.verifications.settle(
                verification_id,
                token,
                only_if=send.held_status,
                error_code=ErrorCode.PROVIDER_UNAVAILABLE.value,
                error_message="not sent before the send deadline",
                updated_at=now,
                **send.giving_up(now),
            ):
                send.record_failure(uow, verification, ErrorCode.PROVIDER_UNAVAILABLE)
            uow.commit()
            bound.warning("send.deadline_passed", resend=resend)
            return None
        # An earlier call whose answer was lost: it may have reached the provider.
        lost_call_started_at = verification.provider_call_started_at
        uow.verifications.mark_call_started(verification_id, token, lost_call_started_at or now)
        uow.commit()

    def settle(then: Callable[[UnitOfWork], None] | None = None, **values: Any) -> bool:
        with deps.uow_factory() as uow:
            settled = uow.verifications.settle(
                verification_id, token, only_if=send.held_status, updated_at=utcnow(), **values
            )
            if settled and then is not None:
                then(uow)
            uow.commit()
        return settled

    try:
        sent = _send_once(deps, verification, send.channel, lost_call_started_at)
    except _Throttled as throttled:
        return _requeue_throttled(
            deps, verification, throttled, settle, send.waiting_status, lost_call_started_at
        )
    except ProviderTransientError as exc:
        return _after_transient_error(
            deps,
            verification,
            exc,
            settle,
            retry_values={"status": send.waiting_status},
            give_up_values=send.giving_up(utcnow()),
            event="send.provider_error",
            on_give_up=partial(send.record_failure, verification=verification, reason=exc.reason),
        )
    except ProviderError as exc:
        settle(
            partial(send.record_failure, verification=verification, reason=exc.reason),
            provider_call_started_at=None,
            **send.giving_up(utcnow()),
            **_error_values(exc),
        )
        bound.warning(
            "send.failed",
            reason=exc.reason.value,
            provider_code=exc.provider_code,
            resend=resend,
        )
        return None

    outcome: dict[str, object] = {
        "status": VerificationStatus.PENDING,
        "provider_sid": sent.sid,
        "send_attempts": verification.send_attempts + 1,
        "expires_at": max(
            sent.created_at + settings.code_lifetime, utcnow() + timedelta(seconds=30)
        ),
        "provider_call_started_at": None,
        "error_code": None,
        "error_message": None,
        "provider_error_code": None,
    }
    if resend:
        outcome.update(channel=send.channel, resend_channel=None)

    def record_sent(uow: UnitOfWork) -> None:
        audit.record_for(
            uow,
            EventType.VERIFICATION_SENT,
            verification,
            channel=send.channel.value,
            resend=resend,
        )

    if settle(record_sent, **outcome):
        bound.info("send.pending", attempts=verification.provider_attempts, resend=resend)
    else:
        bound.warning("send.outcome_dropped", note="the row was taken over or ended meanwhile")
    return None


def _send_once(
    deps: DeliveryDeps,
    verification: Verification,
    channel: Channel,
    lost_call_started_at: datetime | None,
) -> ProviderVerification:
    if lost_call_started_at is not None:
        _take_provider_slot(deps)
        try:
            existing = deps.verify.find_pending_verification(verification.to_e164)
        except ProviderTransientError as exc:
            # We still do not know whether the lost call went out: keep looking next time.
            exc.ambiguous = True
            raise
        if (
            existing is not None
            and existing.last_sent_at is not None
            and existing.last_sent_at >= lost_call_started_at - _CLOCK_TOLERANCE
        ):
            log.info(
                "send.reconciled",
                verification_id=str(verification.id),
                note="the earlier call went through; not sending again",
            )
            return existing
    _take_provider_slot(deps)
    return deps.verify.start_verification(verification.to_e164, channel, verification.locale)


def _requeue_throttled(
    deps: DeliveryDeps,
    row: Verification | VerificationCheck,
    throttled: _Throttled,
    settle: Callable[..., bool],
    waiting_status: VerificationStatus | CheckStatus,
    call_marker: datetime | None,
) -> RetryLater | None:
    """The throttle asked for a longer wait than the claim allows: back to the queue, and the
    attempt does not count — no provider call was made."""
    metrics.PROVIDER_THROTTLE_REQUEUES.inc()
    countdown = throttled.wait
    if not settle(
        status=waiting_status,
        provider_attempts=max(row.provider_attempts - 1, 0),
        provider_call_started_at=call_marker,
        next_attempt_at=utcnow() + timedelta(seconds=countdown) + deps.settings.requeue_after,
    ):
        return None
    log.info("provider.throttled", row_id=str(row.id), requeued_for=round(countdown, 2))
    return RetryLater(countdown=countdown)


def _after_transient_error(
    deps: DeliveryDeps,
    row: Verification | VerificationCheck,
    exc: ProviderTransientError,
    settle: Callable[..., bool],
    *,
    retry_values: dict[str, object],
    give_up_values: dict[str, object],
    event: str,
    on_give_up: Callable[[UnitOfWork], None] | None = None,
) -> RetryLater | None:
    """Put the row back to wait for a retry, at the latest at its deadline (where the retry
    finds it too late and gives up), or give up now if the deadline has passed. Either way the
    attempt and its error are committed before anything else."""
    settings = deps.settings
    now = utcnow()
    left = (row.deadline_at - now).total_seconds()
    delay = min(backoff_seconds(settings, row.provider_attempts, exc.retry_after), max(left, 0.0))
    give_up = left <= 0
    values: dict[str, object] = dict(_error_values(exc))
    if not exc.ambiguous:
        values["provider_call_started_at"] = None
    if give_up:
        values.update(give_up_values)
    else:
        values.update(
            retry_values,
            next_attempt_at=now + timedelta(seconds=delay) + settings.requeue_after,
        )
    settled = settle(on_give_up if give_up else None, **values)
    log.warning(
        event,
        row_id=str(row.id),
        attempts=row.provider_attempts,
        provider_code=exc.provider_code,
        status=exc.status,
        ambiguous=exc.ambiguous,
        next=("give up" if give_up else f"retry in {delay:.1f}s"),
    )
    if give_up or not settled:
        return None
    return RetryLater(countdown=delay)


def check_code(deps: DeliveryDeps, check_id: uuid.UUID) -> RetryLater | None:
    settings = deps.settings
    now = utcnow()
    bound = log.bind(check_id=str(check_id))
    with deps.uow_factory() as uow:
        token = uow.checks.claim(check_id, now=now, until=now + settings.claim_lease)
        if token is None:
            bound.info("check.skipped", reason="not claimable")
            return None
        check = uow.checks.get(check_id)
        assert check is not None
        verification = uow.verifications.get(check.verification_id)
        assert verification is not None
        bound = bound.bind(verification_id=str(verification.id))
        code = deps.stash.get(check_id)
        refusal = _check_refusal(check, verification, code, now)
        if refusal is not None:
            status, error_code, message = refusal
            uow.checks.settle(
                check_id,
                token,
                status=status,
                error_code=error_code.value,
                error_message=message,
                completed_at=now,
                updated_at=now,
            )
            if error_code is ErrorCode.CODE_UNAVAILABLE:
                # The provider never saw this attempt; give it back to the user.
                uow.verifications.transition(
                    verification.id,
                    from_statuses=[VerificationStatus.PENDING],
                    check_attempts=max(verification.check_attempts - 1, 0),
                    updated_at=now,
                )
            uow.commit()
            bound.info("check.refused", status=status.value, reason=error_code.value)
            return None
        assert code is not None  # _check_refusal refuses a check whose code is lost
        uow.checks.mark_call_started(check_id, token, check.provider_call_started_at or now)
        uow.commit()

    def settle(then: Callable[[UnitOfWork], None] | None = None, **values: Any) -> bool:
        with deps.uow_factory() as uow:
            settled = uow.checks.settle(
                check_id, token, only_if=CheckStatus.QUEUED, updated_at=utcnow(), **values
            )
            if settled and then is not None:
                then(uow)
            uow.commit()
        return settled

    assert verification.provider_sid is not None
    try:
        _take_provider_slot(deps)
        result = deps.verify.check_code(verification.provider_sid, code)
    except _Throttled as throttled:
        return _requeue_throttled(
            deps, check, throttled, settle, CheckStatus.QUEUED, check.provider_call_started_at
        )
    except ProviderTransientError as exc:
        return _after_transient_error(
            deps,
            check,
            exc,
            settle,
            retry_values={},
            give_up_values={"status": CheckStatus.FAILED, "completed_at": utcnow()},
            event="check.provider_error",
            on_give_up=lambda _uow: deps.stash.discard(check_id),
        )
    except ProviderError as exc:
        _settle_check_refused_by_provider(deps, check, verification, token, exc)
        bound.info("check.ended", reason=exc.reason.value, provider_code=exc.provider_code)
        return None
    _settle_check_answer(deps, check, verification, token, result)
    deps.stash.discard(check_id)
    bound.info("check.answered", approved=result.approved)
    return None


def _check_refusal(
    check: VerificationCheck, verification: Verification, code: str | None, now: datetime
) -> tuple[CheckStatus, ErrorCode, str] | None:
    if now >= check.deadline_at:
        return (
            CheckStatus.FAILED,
            ErrorCode.PROVIDER_UNAVAILABLE,
            "not checked before the check deadline",
        )
    if verification.status is not VerificationStatus.PENDING or verification.provider_sid is None:
        if verification.status is VerificationStatus.MAX_ATTEMPTS_REACHED:
            return (
                CheckStatus.MAX_ATTEMPTS_REACHED,
                ErrorCode.MAX_CHECK_ATTEMPTS_REACHED,
                "the verification used all its checks",
            )
        return (
            CheckStatus.EXPIRED,
            ErrorCode.VERIFICATION_EXPIRED,
            f"the verification is {verification.status.value}",
        )
    if code is None:
        return (
            CheckStatus.FAILED,
            ErrorCode.CODE_UNAVAILABLE,
            "the submitted code was lost; submit it again",
        )
    return None


def _settle_check_answer(
    deps: DeliveryDeps,
    check: VerificationCheck,
    verification: Verification,
    token: uuid.UUID,
    result: ProviderCheck,
) -> None:
    now = utcnow()
    with deps.uow_factory() as uow:
        status = CheckStatus.APPROVED if result.approved else CheckStatus.REJECTED
        if not uow.checks.settle(
            check.id,
            token,
            only_if=CheckStatus.QUEUED,
            status=status,
            provider_call_started_at=None,
            error_code=None,
            error_message=None,
            provider_error_code=None,
            completed_at=now,
            updated_at=now,
        ):
            return
        if result.approved:
            if uow.verifications.transition(
                verification.id,
                from_statuses=[VerificationStatus.PENDING],
                status=VerificationStatus.APPROVED,
                resend_channel=None,
                completed_at=now,
                updated_at=now,
            ):
                audit.record_for(uow, EventType.VERIFICATION_APPROVED, verification)
                two_step.on_verification_approved(uow, verification, now)
        else:
            current = uow.verifications.get(verification.id)
            assert current is not None
            audit.record_for(
                uow, EventType.CHECK_REJECTED, verification, attempt=current.check_attempts
            )
            if current.check_attempts >= deps.settings.max_check_attempts and (
                uow.verifications.transition(
                    verification.id,
                    from_statuses=[VerificationStatus.PENDING],
                    status=VerificationStatus.MAX_ATTEMPTS_REACHED,
                    resend_channel=None,
                    error_code=ErrorCode.MAX_CHECK_ATTEMPTS_REACHED.value,
                    error_message="every allowed check was a wrong code",
                    completed_at=now,
                    updated_at=now,
                )
            ):
                audit.record_for(uow, EventType.VERIFICATION_MAX_ATTEMPTS, verification)
        uow.commit()
    _count_for_lockout(deps, verification, approved=result.approved)


def _count_for_lockout(deps: DeliveryDeps, verification: Verification, *, approved: bool) -> None:
    if verification.user_id is None:
        return
    try:
        if approved:
            deps.lockout.record_success(verification.user_id)
            return
        locked_for = deps.lockout.record_failure(verification.user_id)
    except ServiceUnavailable:
        # The outcome is recorded; only the lockout's count missed it. The API refuses checks
        # while Redis is down, so nobody guesses on uncounted.
        log.error("check.lockout_unrecorded", verification_id=str(verification.id))
        return
    if locked_for:
        log.warning("user.locked", verification_id=str(verification.id), seconds=locked_for)
        with deps.uow_factory() as uow:
            audit.record_for(uow, EventType.USER_LOCKED, verification, seconds=locked_for)
            uow.commit()


def _settle_check_refused_by_provider(
    deps: DeliveryDeps,
    check: VerificationCheck,
    verification: Verification,
    token: uuid.UUID,
    exc: ProviderError,
) -> None:
    now = utcnow()
    if isinstance(exc, ProviderFinalError) and exc.reason is ErrorCode.MAX_CHECK_ATTEMPTS_REACHED:
        check_status, verification_status = (
            CheckStatus.MAX_ATTEMPTS_REACHED,
            VerificationStatus.MAX_ATTEMPTS_REACHED,
        )
    elif isinstance(exc, ProviderFinalError) and exc.reason is ErrorCode.VERIFICATION_EXPIRED:
        # The provider no longer holds the verification (expired, or used up elsewhere).
        check_status, verification_status = CheckStatus.EXPIRED, VerificationStatus.EXPIRED
    else:
        check_status, verification_status = CheckStatus.FAILED, None
    with deps.uow_factory() as uow:
        if not uow.checks.settle(
            check.id,
            token,
            only_if=CheckStatus.QUEUED,
            status=check_status,
            provider_call_started_at=None,
            completed_at=now,
            updated_at=now,
            **_error_values(exc),
        ):
            return
        ended = verification_status is not None and uow.verifications.transition(
            verification.id,
            from_statuses=[VerificationStatus.PENDING],
            status=verification_status,
            resend_channel=None,
            completed_at=now,
            updated_at=now,
            **_error_values(exc),
        )
        if ended and verification_status is VerificationStatus.MAX_ATTEMPTS_REACHED:
            audit.record_for(uow, EventType.VERIFICATION_MAX_ATTEMPTS, verification)
        uow.commit()
    deps.stash.discard(check.id)
    if verification_status is VerificationStatus.MAX_ATTEMPTS_REACHED:
        _count_for_lockout(deps, verification, approved=False)
