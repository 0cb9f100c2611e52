"""A change and what goes with it (its audit event, the check it admits, the verification a
check approves) are written together or not at all: in one statement on PostgreSQL, which then
needs no transaction around it, in one transaction on SQLite."""

from __future__ import annotations

import contextlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

from shared.audit.domain import EventType
from shared.kit.clock import SystemClock, utcnow
from shared.kit.db.session import AfterCommit
from shared.kit.settings import Settings
from shared.tenants.keys import create_api_key
from shared.tenants.models import ApiKey
from shared.unit_of_work import UnitOfWork, UnitOfWorkFactory
from shared.verifications.domain import Channel, CheckStatus, VerificationStatus
from shared.verifications.events import event_for
from shared.verifications.models import Verification, VerificationCheck
from shared.verifications.send_rows import SentCode
from shared.verifications.service import VerificationRequest
from shared.webhooks.models import WebhookEndpoint
from shared.webhooks.outbox import WebhookOutbox
from tests.fakes import FakeChangeFeed, FakeJobQueue
from tests.integration.test_claims import verifications_of
from tests.support import random_phone

SID = "VE" + "1" * 32


async def _key(uow_factory: UnitOfWorkFactory) -> ApiKey:
    async with uow_factory() as uow:
        suffix = uuid.uuid4().hex[:8]
        key, _ = await create_api_key(uow, f"together-{suffix}", tenant=f"together-{suffix}")
    return key


async def _requested(
    uow_factory: UnitOfWorkFactory, settings: Settings, key: ApiKey, to: str, user_id: str
) -> Verification:
    async with uow_factory.single_statements() as uow:
        return await verifications_of(settings).request(
            uow, key, VerificationRequest(to=to, user_id=user_id)
        )


async def _sent(uow_factory: UnitOfWorkFactory, verification: Verification) -> Verification | None:
    """Claimed and recorded as sent with SID, as a worker does."""
    now = utcnow()
    async with uow_factory.single_statements() as uow:
        claimed = await uow.verifications.claim(
            verification.id, now=now, until=now + timedelta(seconds=30)
        )
        assert claimed is not None and claimed.claim_token is not None
        code = SentCode(SID, "VA" + "0" * 32, Channel.SMS, now + timedelta(minutes=10))
        event = event_for(uow, EventType.VERIFICATION_SENT, claimed, channel="sms")
        return await uow.verifications.record_sent(
            verification.id, claimed.claim_token, code, now, event
        )


async def _event_types(uow: UnitOfWork, key: ApiKey, user_id: str) -> list[str]:
    events = await uow.events.page_for_user(key.tenant_id, user_id, before=None, limit=50)
    return sorted(str(event.type) for event, _name in events)


async def test_a_verification_is_inserted_with_the_event_of_its_request(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    key, user_id = await _key(uow_factory), f"user-{uuid.uuid4().hex[:8]}"
    verification = await _requested(uow_factory, settings, key, random_phone(), user_id)
    async with uow_factory.reading() as uow:
        stored = await uow.verifications.get(verification.id)
        assert stored is not None and stored.status is VerificationStatus.QUEUED
        assert await _event_types(uow, key, user_id) == [EventType.VERIFICATION_REQUESTED.value]


async def test_a_send_answered_with_a_sid_another_pending_one_holds_takes_it_over(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    """Twilio answers a second verification to a number with the pending one's SID: the newer
    takes it over; the index that keeps a pending SID unique never sees two."""
    key, user_id, phone = await _key(uow_factory), f"user-{uuid.uuid4().hex[:8]}", random_phone()
    older = await _requested(uow_factory, settings, key, phone, user_id)
    newer = await _requested(uow_factory, settings, key, phone, user_id)
    assert await _sent(uow_factory, older) is not None

    taken = await _sent(uow_factory, newer)

    assert taken is not None and taken.status is VerificationStatus.PENDING
    assert taken.provider_sid == SID
    async with uow_factory.reading() as uow:
        ended = await uow.verifications.get(older.id)
        assert ended is not None
        assert (ended.status, ended.error_code) == (VerificationStatus.CANCELED, "superseded")
        assert ended.provider_open is False
        sent = EventType.VERIFICATION_SENT.value
        assert (await _event_types(uow, key, user_id)).count(sent) == 2


async def test_a_send_another_worker_took_over_records_nothing(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    key, user_id = await _key(uow_factory), f"user-{uuid.uuid4().hex[:8]}"
    verification = await _requested(uow_factory, settings, key, random_phone(), user_id)
    now = utcnow()
    async with uow_factory.single_statements() as uow:
        code = SentCode(SID, "VA" + "0" * 32, Channel.SMS, now + timedelta(minutes=10))
        event = event_for(uow, EventType.VERIFICATION_SENT, verification)
        stale_token = uuid.uuid4()
        assert (
            await uow.verifications.record_sent(verification.id, stale_token, code, now, event)
            is None
        )
    async with uow_factory.reading() as uow:
        assert await _event_types(uow, key, user_id) == [EventType.VERIFICATION_REQUESTED.value]


def _check(verification: Verification) -> VerificationCheck:
    minute = timedelta(minutes=1)
    return VerificationCheck.queued_for(
        verification, uuid.uuid4(), utcnow(), requeue_after=minute, deadline=minute
    )


async def test_a_check_is_inserted_only_with_an_attempt_left_to_take(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    key, user_id = await _key(uow_factory), f"user-{uuid.uuid4().hex[:8]}"
    verification = await _requested(uow_factory, settings, key, random_phone(), user_id)
    await _sent(uow_factory, verification)
    checks = [_check(verification) for _ in range(3)]
    async with uow_factory.single_statements() as uow:
        taken = [await uow.checks.insert_taking_attempt(check, 2, utcnow()) for check in checks]
    assert taken == [True, True, False]
    async with uow_factory.reading() as uow:
        stored = await uow.verifications.get(verification.id)
        assert stored is not None and stored.check_attempts == 2
        assert await uow.checks.get(checks[1].id) is not None
        assert await uow.checks.get(checks[2].id) is None


@dataclass(frozen=True)
class _Claimed:
    """A sent verification's check, claimed by a worker."""

    key: ApiKey
    user_id: str
    verification: Verification
    check_id: uuid.UUID
    token: uuid.UUID


async def _claimed_check(uow_factory: UnitOfWorkFactory, settings: Settings) -> _Claimed:
    key, user_id = await _key(uow_factory), f"user-{uuid.uuid4().hex[:8]}"
    verification = await _requested(uow_factory, settings, key, random_phone(), user_id)
    await _sent(uow_factory, verification)
    check, now = _check(verification), utcnow()
    async with uow_factory.single_statements() as uow:
        assert await uow.checks.insert_taking_attempt(check, 5, now)
        claimed = await uow.checks.claim(check.id, now=now, until=now + timedelta(seconds=30))
    assert claimed is not None and claimed.claim_token is not None
    return _Claimed(key, user_id, verification, check.id, claimed.claim_token)


async def _approve(
    uow_factory: UnitOfWorkFactory, claimed: _Claimed, token: uuid.UUID
) -> tuple[VerificationCheck | None, Verification | None]:
    async with uow_factory.single_statements() as uow:
        event = event_for(uow, EventType.VERIFICATION_APPROVED, claimed.verification)
        return await uow.checks.finish_approving(claimed.check_id, token, event, utcnow())


async def test_an_approval_ends_the_check_and_its_verification_with_their_event(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    claimed = await _claimed_check(uow_factory, settings)
    # Not this token's to finish: nothing at all.
    assert await _approve(uow_factory, claimed, uuid.uuid4()) == (None, None)

    finished, approved = await _approve(uow_factory, claimed, claimed.token)

    assert finished is not None and finished.status is CheckStatus.APPROVED
    assert approved is not None and approved.status is VerificationStatus.APPROVED
    assert approved.provider_open is False and approved.completed_at is not None
    async with uow_factory.reading() as uow:
        types = await _event_types(uow, claimed.key, claimed.user_id)
        assert types.count(EventType.VERIFICATION_APPROVED.value) == 1


async def test_a_check_approved_after_its_verification_ended_approves_nothing_else(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    claimed = await _claimed_check(uow_factory, settings)
    async with uow_factory() as uow:
        canceled = await uow.verifications.cancel(
            claimed.key.tenant_id, claimed.verification.id, utcnow()
        )
        assert canceled is not None

    finished, approved = await _approve(uow_factory, claimed, claimed.token)

    assert finished is not None and finished.status is CheckStatus.APPROVED
    assert approved is None
    async with uow_factory.reading() as uow:
        types = await _event_types(uow, claimed.key, claimed.user_id)
        assert EventType.VERIFICATION_APPROVED.value not in types


async def test_a_tenant_with_a_webhook_endpoint_still_gets_a_transaction(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    """The outbox writes a change's deliveries with it, in its transaction: for a tenant with an
    endpoint, work of one statement still gets one; a tenant without needs none."""
    outbox = WebhookOutbox(settings, SystemClock())
    factory = UnitOfWorkFactory(
        uow_factory.database, AfterCommit(FakeJobQueue(), FakeChangeFeed(), outbox)
    )
    listening, quiet = await _key(factory), await _key(factory)
    async with factory() as uow:
        uow.webhook_endpoints.add(
            WebhookEndpoint(
                id=uuid.uuid4(),
                tenant_id=listening.tenant_id,
                url="https://login.example/hooks",
                secret="whsec_test",
                created_at=utcnow(),
            )
        )
    assert await outbox.reaches_endpoints(listening.tenant_id, factory.reading)
    assert not await outbox.reaches_endpoints(quiet.tenant_id, factory.reading)

    async def written_then_failed(key: ApiKey) -> bool:
        """Whether a verification written before its unit of work failed is there after it."""
        verification_id = None
        with contextlib.suppress(RuntimeError):
            async with await factory.for_one_statement(key.tenant_id) as uow:
                written = await verifications_of(settings).request(
                    uow, key, VerificationRequest(to=random_phone())
                )
                verification_id = written.id
                raise RuntimeError("after the write")
        assert verification_id is not None
        async with factory.reading() as uow:
            return await uow.verifications.get(verification_id) is not None

    assert not await written_then_failed(listening)
    # Without a transaction the statement stood on its own (PostgreSQL; SQLite has one always).
    assert await written_then_failed(quiet) is settings.database_url.startswith("postgresql")
