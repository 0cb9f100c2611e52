"""Use cases on the worker's side: send a code, check a code.

Each runs as three steps on purpose, each its own transaction: claim the row (committed, so a
crash leaves evidence), call the provider (holding no database connection), write the outcome
(only if the claim is still ours). A redelivered or duplicated job finds nothing to claim and
does nothing; a job whose earlier call's outcome was lost looks at the provider before sending.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from shared.clock import utcnow
from shared.codes import CodeStash
from shared.db.models import Verification, VerificationCheck
from shared.db.repository import CheckRepository, VerificationRepository
from shared.db.session import UnitOfWork
from shared.domain import CheckStatus, ErrorCode, VerificationStatus
from shared.errors import (
    ProviderError,
    ProviderFinalError,
    ProviderTransientError,
)
from shared.settings import Settings
from shared.verify.port import ProviderCheck, ProviderVerification, VerifyClient

log = structlog.get_logger(__name__)

# Twilio's timestamps have one-second resolution and its clock is not ours.
_CLOCK_TOLERANCE = timedelta(seconds=5)
_MESSAGE_LIMIT = 300


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


def _error_values(exc: ProviderError, reason: ErrorCode | None = None) -> dict[str, object]:
    return {
        "error_code": (reason or exc.reason).value,
        "error_message": exc.message[:_MESSAGE_LIMIT],
        "provider_error_code": exc.provider_code,
    }


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
        if now >= verification.deadline_at:
            uow.verifications.settle(
                verification_id,
                token,
                status=VerificationStatus.FAILED,
                error_code=ErrorCode.PROVIDER_UNAVAILABLE.value,
                error_message="not sent before the send deadline",
                completed_at=now,
                updated_at=now,
            )
            uow.commit()
            bound.warning("send.deadline_passed", attempts=verification.provider_attempts)
            return None
        # An earlier call whose answer was lost: it may have reached the provider.
        lost_call_started_at = verification.provider_call_started_at
        uow.verifications.mark_call_started(verification_id, token, lost_call_started_at or now)
        uow.commit()

    try:
        sent = _send_once(deps, verification, lost_call_started_at)
    except ProviderTransientError as exc:
        return _after_transient_error(
            deps,
            verification,
            token,
            exc,
            rows=lambda uow: uow.verifications,
            waiting=VerificationStatus.QUEUED,
            failed=VerificationStatus.FAILED,
            event="send.provider_error",
        )
    except ProviderError as exc:
        now = utcnow()
        with deps.uow_factory() as uow:
            if uow.verifications.settle(
                verification_id,
                token,
                status=VerificationStatus.FAILED,
                provider_call_started_at=None,
                completed_at=now,
                updated_at=now,
                **_error_values(exc),
            ):
                uow.commit()
        bound.warning("send.failed", reason=exc.reason.value, provider_code=exc.provider_code)
        return None

    now = utcnow()
    with deps.uow_factory() as uow:
        settled = uow.verifications.settle(
            verification_id,
            token,
            status=VerificationStatus.PENDING,
            provider_sid=sent.sid,
            send_attempts=verification.send_attempts + 1,
            expires_at=max(sent.created_at + settings.code_lifetime, now + timedelta(seconds=30)),
            provider_call_started_at=None,
            error_code=None,
            error_message=None,
            provider_error_code=None,
            updated_at=now,
        )
        uow.commit()
    if settled:
        bound.info("send.pending", attempts=verification.provider_attempts)
    else:
        bound.warning("send.claim_lost", note="another worker took the row over")
    return None


def _send_once(
    deps: DeliveryDeps, verification: Verification, lost_call_started_at: datetime | None
) -> ProviderVerification:
    if lost_call_started_at is not None:
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
    return deps.verify.start_verification(
        verification.to_e164, verification.channel, verification.locale
    )


def _after_transient_error(
    deps: DeliveryDeps,
    row: Verification | VerificationCheck,
    token: uuid.UUID,
    exc: ProviderTransientError,
    *,
    rows: Callable[[UnitOfWork], VerificationRepository | CheckRepository],
    waiting: VerificationStatus | CheckStatus,
    failed: VerificationStatus | CheckStatus,
    event: str,
    on_give_up: Callable[[], None] | None = None,
) -> RetryLater | None:
    """Put the row back to wait for a retry, at the latest at its deadline (where the retry
    finds it too late and fails it), or give up now if the deadline has passed. Either way the
    attempt and its error are committed before anything else."""
    settings = deps.settings
    now = utcnow()
    left = (row.deadline_at - now).total_seconds()
    delay = min(backoff_seconds(settings, row.provider_attempts, exc.retry_after), max(left, 0.0))
    give_up = left <= 0
    values: dict[str, object] = {"updated_at": now, **_error_values(exc)}
    if not exc.ambiguous:
        values["provider_call_started_at"] = None
    if give_up:
        values.update(status=failed, completed_at=now)
    else:
        values.update(
            status=waiting, next_attempt_at=now + timedelta(seconds=delay) + settings.requeue_after
        )
    with deps.uow_factory() as uow:
        settled = rows(uow).settle(row.id, token, **values)
        uow.commit()
    log.warning(
        event,
        row_id=str(row.id),
        attempts=row.provider_attempts,
        provider_code=exc.provider_code,
        status=exc.status,
        ambiguous=exc.ambiguous,
        next=("give up" if give_up else f"retry in {delay:.1f}s"),
    )
    if give_up and settled and on_give_up is not None:
        on_give_up()
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
        refusal = _check_refusal(deps, check, verification, now)
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
        code = deps.stash.get(check_id)
        assert code is not None  # _check_refusal saw it
        uow.checks.mark_call_started(check_id, token, check.provider_call_started_at or now)
        uow.commit()

    assert verification.provider_sid is not None
    try:
        result = deps.verify.check_code(verification.provider_sid, code)
    except ProviderTransientError as exc:
        return _after_transient_error(
            deps,
            check,
            token,
            exc,
            rows=lambda uow: uow.checks,
            waiting=CheckStatus.QUEUED,
            failed=CheckStatus.FAILED,
            event="check.provider_error",
            on_give_up=lambda: deps.stash.discard(check_id),
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
    deps: DeliveryDeps, check: VerificationCheck, verification: Verification, now: datetime
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
    if deps.stash.get(check.id) is None:
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
            uow.verifications.transition(
                verification.id,
                from_statuses=[VerificationStatus.PENDING],
                status=VerificationStatus.APPROVED,
                completed_at=now,
                updated_at=now,
            )
        else:
            current = uow.verifications.get(verification.id)
            assert current is not None
            if current.check_attempts >= deps.settings.max_check_attempts:
                uow.verifications.transition(
                    verification.id,
                    from_statuses=[VerificationStatus.PENDING],
                    status=VerificationStatus.MAX_ATTEMPTS_REACHED,
                    error_code=ErrorCode.MAX_CHECK_ATTEMPTS_REACHED.value,
                    error_message="every allowed check was a wrong code",
                    completed_at=now,
                    updated_at=now,
                )
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
            status=check_status,
            provider_call_started_at=None,
            completed_at=now,
            updated_at=now,
            **_error_values(exc),
        ):
            return
        if verification_status is not None:
            uow.verifications.transition(
                verification.id,
                from_statuses=[VerificationStatus.PENDING],
                status=verification_status,
                completed_at=now,
                updated_at=now,
                **_error_values(exc),
            )
        uow.commit()
    deps.stash.discard(check.id)
