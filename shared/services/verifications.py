"""Use cases at the API's edge: ask for a code, send it again, cancel, submit a code, read.

They consult the limits first, then write rows and buffer jobs on the unit of work; the caller
commits, and the jobs go out after the commit. A refused request writes nothing and publishes
nothing. None of them waits for the provider.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from shared.clock import utcnow
from shared.codes import CodeStash
from shared.db.models import ApiKey, Verification, VerificationCheck
from shared.db.session import UnitOfWork
from shared.domain import Channel, CheckStatus, EventType, Purpose, VerificationStatus
from shared.errors import (
    CheckAttemptsExhausted,
    CountryNotAllowed,
    InvalidInput,
    NotFound,
    VerificationNotPending,
)
from shared.jobs import Job
from shared.limits import Guards, SendRequest
from shared.phone import parse_phone
from shared.services import audit
from shared.settings import Settings

_CODE_SHAPE = re.compile(r"^[0-9A-Za-z]{4,10}$")


@dataclass(frozen=True, slots=True)
class VerificationRequest:
    to: str
    channel: Channel = Channel.SMS
    locale: str | None = None
    user_id: str | None = None
    client_ip: str | None = None
    purpose: Purpose = Purpose.STANDALONE


def request_verification(
    uow: UnitOfWork,
    settings: Settings,
    guards: Guards,
    api_key: ApiKey,
    request: VerificationRequest,
    now: datetime | None = None,
) -> Verification:
    now = now or utcnow()
    phone = parse_phone(request.to)
    if settings.allowed_countries is not None and phone.region not in settings.allowed_countries:
        raise CountryNotAllowed(
            f"codes are not sent to numbers of {phone.region} "
            f"(allowed: {', '.join(sorted(settings.allowed_countries))})"
        )
    verification_id = uuid.uuid4()
    guards.sends.admit(
        SendRequest(
            destination=phone.e164,
            region=phone.region,
            verification_id=verification_id,
            api_key_id=api_key.id,
            user_id=request.user_id,
            client_ip=request.client_ip,
        )
    )
    verification = Verification(
        id=verification_id,
        status=VerificationStatus.QUEUED,
        purpose=request.purpose,
        channel=request.channel,
        to_e164=phone.e164,
        destination_region=phone.region,
        locale=request.locale,
        user_id=request.user_id,
        client_ip=request.client_ip,
        api_key_id=api_key.id,
        send_attempts=0,
        check_attempts=0,
        provider_attempts=0,
        enqueue_count=1,
        next_attempt_at=now + settings.requeue_after,
        created_at=now,
        updated_at=now,
        deadline_at=now + settings.send_deadline,
    )
    uow.verifications.add(verification)
    audit.record_for(
        uow, EventType.VERIFICATION_REQUESTED, verification, channel=request.channel.value
    )
    uow.enqueue_after_commit(Job.send_code(verification.id))
    return verification


def get_verification(uow: UnitOfWork, verification_id: uuid.UUID) -> Verification:
    verification = uow.verifications.get(verification_id)
    if verification is None:
        raise NotFound(f"no verification {verification_id}")
    return verification


def _not_pending(verification: Verification) -> VerificationNotPending:
    return VerificationNotPending(
        f"verification {verification.id} is {verification.status.value}, not pending"
    )


def request_resend(
    uow: UnitOfWork,
    settings: Settings,
    guards: Guards,
    api_key: ApiKey,
    verification_id: uuid.UUID,
    channel: Channel | None = None,
    now: datetime | None = None,
) -> Verification:
    """Send a pending verification's code again — the same code, on its channel or another.

    A re-send already waiting for a worker is not doubled: the verification is answered as is.
    """
    now = now or utcnow()
    verification = get_verification(uow, verification_id)
    if verification.status is not VerificationStatus.PENDING:
        raise _not_pending(verification)
    if verification.resend_channel is not None:
        return verification
    guards.sends.admit(
        SendRequest(
            destination=verification.to_e164,
            region=verification.destination_region,
            verification_id=verification.id,
            api_key_id=api_key.id,
            user_id=verification.user_id,
            client_ip=verification.client_ip,
        )
    )
    channel = channel or verification.channel
    if not uow.verifications.request_resend(
        verification_id,
        channel,
        now=now,
        deadline=now + settings.send_deadline,
        next_look=now + settings.requeue_after,
    ):
        current = get_verification(uow, verification_id)
        if current.status is not VerificationStatus.PENDING:
            raise _not_pending(current)
        return current
    audit.record_for(
        uow,
        EventType.VERIFICATION_RESEND_REQUESTED,
        verification,
        api_key_id=api_key.id,
        channel=channel.value,
    )
    uow.enqueue_after_commit(Job.send_code(verification_id))
    return get_verification(uow, verification_id)


def cancel_verification(
    uow: UnitOfWork,
    api_key: ApiKey,
    verification_id: uuid.UUID,
    now: datetime | None = None,
) -> Verification:
    """End a verification that is not over yet; canceling a canceled one changes nothing."""
    now = now or utcnow()
    verification = get_verification(uow, verification_id)
    if verification.status is VerificationStatus.CANCELED:
        return verification
    if not uow.verifications.cancel(verification_id, now):
        raise _not_pending(get_verification(uow, verification_id))
    audit.record_for(uow, EventType.VERIFICATION_CANCELED, verification, api_key_id=api_key.id)
    return get_verification(uow, verification_id)


def request_check(
    uow: UnitOfWork,
    settings: Settings,
    guards: Guards,
    stash: CodeStash,
    verification_id: uuid.UUID,
    code: str,
    now: datetime | None = None,
) -> VerificationCheck:
    now = now or utcnow()
    code = code.strip()
    if not _CODE_SHAPE.match(code):
        raise InvalidInput("a code is 4 to 10 letters or digits")
    verification = get_verification(uow, verification_id)
    if verification.status is VerificationStatus.MAX_ATTEMPTS_REACHED:
        raise _attempts_exhausted(settings, verification, now)
    if verification.status is not VerificationStatus.PENDING:
        raise _not_pending(verification)
    if verification.user_id is not None:
        guards.lockout.ensure_not_locked(verification.user_id)
    if not uow.verifications.take_check_attempt(verification_id, settings.max_check_attempts, now):
        current = get_verification(uow, verification_id)
        if current.status in (VerificationStatus.PENDING, VerificationStatus.MAX_ATTEMPTS_REACHED):
            raise _attempts_exhausted(settings, current, now)
        raise _not_pending(current)
    check = VerificationCheck(
        id=uuid.uuid4(),
        verification_id=verification_id,
        status=CheckStatus.QUEUED,
        provider_attempts=0,
        enqueue_count=1,
        next_attempt_at=now + settings.requeue_after,
        created_at=now,
        updated_at=now,
        deadline_at=now + settings.check_deadline,
    )
    # Stashed before the commit: a check row never exists without its code. If the commit
    # fails instead, the stashed code simply expires.
    stash.put(check.id, code, ttl_seconds=int(settings.check_deadline_seconds) + 60)
    uow.checks.add(check)
    uow.enqueue_after_commit(Job.check_code(check.id))
    return check


def _attempts_exhausted(
    settings: Settings, verification: Verification, now: datetime
) -> CheckAttemptsExhausted:
    # Twilio's advice for its 60202: wait until the verification expires, or start a new one.
    until_expiry = (verification.expires_at or now) - now
    return CheckAttemptsExhausted(
        f"all {settings.max_check_attempts} checks of verification {verification.id} are used; "
        "start a new verification",
        limit="checks_per_verification",
        retry_after=int(until_expiry.total_seconds()),
    )


def get_check(
    uow: UnitOfWork, verification_id: uuid.UUID, check_id: uuid.UUID
) -> VerificationCheck:
    check = uow.checks.get_for_verification(verification_id, check_id)
    if check is None:
        raise NotFound(f"no check {check_id} on verification {verification_id}")
    return check
