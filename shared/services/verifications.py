"""Use cases at the API's edge: ask for a code, read a verification, submit a code, read a check.

They write rows and buffer jobs on the unit of work; the caller commits, and the jobs go out
after the commit. None of them waits for the provider.
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
from shared.domain import Channel, CheckStatus, Purpose, VerificationStatus
from shared.errors import (
    CheckAttemptsExhausted,
    InvalidInput,
    NotFound,
    VerificationNotPending,
)
from shared.jobs import Job
from shared.phone import parse_phone
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
    api_key: ApiKey,
    request: VerificationRequest,
    now: datetime | None = None,
) -> Verification:
    now = now or utcnow()
    phone = parse_phone(request.to)
    verification = Verification(
        id=uuid.uuid4(),
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
    uow.enqueue_after_commit(Job.send_code(verification.id))
    return verification


def get_verification(uow: UnitOfWork, verification_id: uuid.UUID) -> Verification:
    verification = uow.verifications.get(verification_id)
    if verification is None:
        raise NotFound(f"no verification {verification_id}")
    return verification


def request_check(
    uow: UnitOfWork,
    settings: Settings,
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
    if verification.status is not VerificationStatus.PENDING:
        raise VerificationNotPending(
            f"verification {verification_id} is {verification.status.value}, not pending"
        )
    if not uow.verifications.take_check_attempt(verification_id, settings.max_check_attempts, now):
        current = get_verification(uow, verification_id)
        if current.status is VerificationStatus.PENDING:
            raise CheckAttemptsExhausted(
                f"all {settings.max_check_attempts} checks of verification {verification_id} "
                "are used; request a new code"
            )
        raise VerificationNotPending(
            f"verification {verification_id} is {current.status.value}, not pending"
        )
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


def get_check(
    uow: UnitOfWork, verification_id: uuid.UUID, check_id: uuid.UUID
) -> VerificationCheck:
    check = uow.checks.get_for_verification(verification_id, check_id)
    if check is None:
        raise NotFound(f"no check {check_id} on verification {verification_id}")
    return check
