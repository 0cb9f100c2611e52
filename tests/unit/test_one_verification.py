"""One twostep verification, one Twilio verification: earlier verifications to a number are
superseded before a send, a verification over here is ended at Twilio, each tenant sends through
its own Verify service, and numbers are looked up where a tenant asks. Against fakes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import timedelta

import pytest

from shared.audit.domain import EventType
from shared.errors import ErrorCode, InvalidInput, ProviderTransientError
from shared.kit.changes import Change
from shared.kit.jobs import CLOSE_VERIFICATION
from shared.limits.ports import Guards
from shared.tenants.keys import create_api_key
from shared.tenants.models import ApiKey
from shared.tenants.service import NewTenant, create_tenant, provision_service
from shared.verifications.delivery import Delivery, RetryLater
from shared.verifications.domain import CheckStatus, Purpose, VerificationStatus
from shared.verifications.service import VerificationRequest, Verifications
from tests.fakes import FakeChangeFeed, FakeClock, FakeJobQueue, FakeLockout, FakeVerifyClient
from tests.unit.test_delivery import TO, events, load, load_check, pending, queued, submit


class TestSuperseding:
    async def test_a_new_verification_ends_the_earlier_one_here_and_at_twilio(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        first = await pending(delivery, verifications, key)
        first_sid = (await load(delivery, first)).provider_sid
        first_code = verify.sent_codes[TO]
        clock.advance(1)
        second = await pending(delivery, verifications, key)
        earlier, later = await load(delivery, first), await load(delivery, second)
        assert (earlier.status, earlier.error_code) == (VerificationStatus.CANCELED, "superseded")
        assert later.provider_sid != first_sid, "the new verification is Twilio's new one"
        assert verify.count("cancel") == 1 and not earlier.provider_open
        # The earlier code is no good for the new verification, and the earlier verification
        # takes no more checks.
        check = await submit(delivery, verifications, second, first_code)
        await delivery.check_code(check)
        if verify.sent_codes[TO] != first_code:
            assert (await load_check(delivery, check)).status is CheckStatus.REJECTED

    async def test_of_two_waiting_to_be_sent_only_the_newer_is_sent(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        older = await queued(delivery, verifications, key)
        clock.advance(1)
        newer = await queued(delivery, verifications, key)
        assert await delivery.send_code(older) is None
        assert await delivery.send_code(newer) is None
        ended = await load(delivery, older)
        assert (ended.status, ended.error_code) == (VerificationStatus.CANCELED, "superseded")
        assert (await load(delivery, newer)).status is VerificationStatus.PENDING
        assert verify.count("start") == 1, "the superseded one was never sent"

    async def test_a_send_waits_while_another_call_on_its_number_is_in_flight(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        older = await queued(delivery, verifications, key)
        async with delivery.uow_factory() as uow:  # a worker is sending it right now
            now = clock.now()
            assert await uow.verifications.claim(older, now=now, until=now + timedelta(seconds=30))
        clock.advance(1)
        newer = await queued(delivery, verifications, key)
        outcome = await delivery.send_code(newer)
        assert isinstance(outcome, RetryLater)
        assert verify.count("start") == 0 and verify.count("cancel") == 0
        row = await load(delivery, newer)
        assert (row.status, row.provider_attempts) == (VerificationStatus.QUEUED, 0)

    async def test_other_tenants_and_other_numbers_are_left_alone(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        other_key = await _key_of_new_tenant(delivery, verify, "other-tenant")
        mine = await pending(delivery, verifications, key)
        theirs = await pending(delivery, verifications, other_key)
        elsewhere = await pending(delivery, verifications, key, to="+14155550199")
        for verification_id in (mine, theirs, elsewhere):
            assert (await load(delivery, verification_id)).status is VerificationStatus.PENDING
        assert verify.count("cancel") == 0
        assert (await load(delivery, mine)).provider_sid != (
            await load(delivery, theirs)
        ).provider_sid, "two tenants, one number: two Twilio verifications"


class TestClosingAtTwilio:
    async def test_a_canceled_verification_is_canceled_at_twilio_by_a_job(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        job_queue: FakeJobQueue,
    ) -> None:
        verification_id = await pending(delivery, verifications, key)
        async with delivery.uow_factory() as uow:
            await verifications.cancel(uow, key, verification_id)
        (close,) = [job for job in job_queue.published if job.name == CLOSE_VERIFICATION]
        assert close.entity_id == verification_id
        assert await delivery.close_verification(verification_id) is None
        assert verify.count("cancel") == 1 and not verify.has_pending(TO)
        assert not (await load(delivery, verification_id)).provider_open
        # Once closed, closing again calls nobody.
        assert await delivery.close_verification(verification_id) is None
        assert verify.count("cancel") == 1

    async def test_a_failed_cancel_is_retried_until_twilio_would_have_ended_it(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        verification_id = await pending(delivery, verifications, key)
        async with delivery.uow_factory() as uow:
            await verifications.cancel(uow, key, verification_id)
        verify.fail_next(ProviderTransientError("cancel: 503"))
        assert isinstance(await delivery.close_verification(verification_id), RetryLater)
        assert (await load(delivery, verification_id)).provider_open
        clock.advance(11 * 60)
        verify.fail_next(ProviderTransientError("cancel: 503"))
        assert await delivery.close_verification(verification_id) is None
        assert not (await load(delivery, verification_id)).provider_open


class TestTenantsServices:
    async def test_each_tenant_sends_through_its_own_service(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        other_key = await _key_of_new_tenant(delivery, verify, "apart")
        await pending(delivery, verifications, key)
        await pending(delivery, verifications, other_key)
        services = {service for service, _to in verify.pending}
        assert len(services) == 2 and verify.default_service in services

    async def test_a_service_with_short_codes_is_refused(self, verify: FakeVerifyClient) -> None:
        short = await verify.create_service("four digits", 4)
        with pytest.raises(InvalidInput, match="at least 6"):
            await provision_service(verify, NewTenant("shorty", service_sid=short.sid))

    async def test_a_display_name_twilio_would_refuse_is_refused(
        self, verify: FakeVerifyClient
    ) -> None:
        with pytest.raises(InvalidInput, match="display name"):
            await provision_service(verify, NewTenant("t", display_name="Call 0800 12345"))


class TestNumberChecks:
    async def test_a_voip_number_cannot_enrol_and_its_type_is_remembered(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        verify.line_types[TO] = "nonFixedVoip"
        on = _number_checks(delivery, line_type=True)
        for _ in range(2):
            verification_id = await _queued_for(on, verifications, key, Purpose.ENROLLMENT)
            assert await on.send_code(verification_id) is None
            row = await load(on, verification_id)
            assert (row.status, row.error_code) == (
                VerificationStatus.FAILED,
                "line_type_not_allowed",
            )
        assert verify.count("lookup") == 1, "a line type is looked up once"
        assert verify.count("start") == 0

    async def test_a_recently_swapped_sim_gets_no_login_code(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        on = _number_checks(delivery, sim_swap=True)
        verify.swapped_at[TO] = clock.now() - timedelta(hours=1)
        verification_id = await _queued_for(on, verifications, key, Purpose.LOGIN, "u1")
        assert await on.send_code(verification_id) is None
        row = await load(on, verification_id)
        assert (row.status, row.error_code) == (VerificationStatus.FAILED, "sim_swap_detected")
        assert verify.count("start") == 0
        # A swap older than the window is no reason to refuse.
        verify.swapped_at[TO] = clock.now() - timedelta(days=30)
        again = await _queued_for(on, verifications, key, Purpose.LOGIN, "u1")
        assert await on.send_code(again) is None
        assert (await load(on, again)).status is VerificationStatus.PENDING
        assert EventType.VERIFICATION_FAILED in await events(on, "u1")

    async def test_lookup_down_retries_and_sends_nothing_meanwhile(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        on = _number_checks(delivery, line_type=True)
        verification_id = await _queued_for(on, verifications, key, Purpose.ENROLLMENT)
        verify.fail_next(ProviderTransientError("lookup: 503"))
        assert isinstance(await on.send_code(verification_id), RetryLater)
        assert verify.count("start") == 0
        row = await load(on, verification_id)
        assert row.status is VerificationStatus.QUEUED
        assert row.error_code == ErrorCode.PROVIDER_UNAVAILABLE.value


def _number_checks(
    delivery: Delivery, *, line_type: bool = False, sim_swap: bool = False
) -> Delivery:
    settings = delivery.settings.model_copy(
        update={"line_type_check": line_type, "sim_swap_check": sim_swap}
    )
    numbers = type(delivery.numbers)(
        delivery.numbers.lookup,
        delivery.numbers.line_types,
        delivery.numbers.keyring,
        settings,
        delivery.clock,
    )
    tenants = type(delivery.tenants)(
        delivery.uow_factory.reading, settings, FakeVerifyClient.default_service, 0.001
    )
    return Delivery(
        **{**vars(delivery), "settings": settings, "numbers": numbers, "tenants": tenants}
    )


async def _queued_for(
    delivery: Delivery,
    verifications: Verifications,
    key: ApiKey,
    purpose: Purpose,
    user_id: str | None = None,
) -> uuid.UUID:
    async with delivery.uow_factory() as uow:
        verification = await verifications.request(
            uow, key, VerificationRequest(to=TO, purpose=purpose, user_id=user_id)
        )
    return verification.id


async def _key_of_new_tenant(delivery: Delivery, verify: FakeVerifyClient, name: str) -> ApiKey:
    service = await provision_service(verify, NewTenant(name))
    async with delivery.uow_factory() as uow:
        await create_tenant(uow, NewTenant(name), service)
        key, _ = await create_api_key(uow, f"{name}-key", tenant=name)
    return key


class TestWakingAfterTheLockoutCounted:
    async def test_a_waiter_woken_by_a_wrong_code_finds_it_counted(
        self,
        delivery: Delivery,
        verifications: Verifications,
        key: ApiKey,
        guards: Guards,
        changes: FakeChangeFeed,
    ) -> None:
        """The check's answer wakes its long-poll; a login started the moment it answers must
        find the lock that answer caused."""
        verification_id = await pending(delivery, verifications, key)
        check_id = await submit(delivery, verifications, verification_id, "999999")
        lockout = guards.lockout
        assert isinstance(lockout, FakeLockout)
        seen_at_publish: list[int] = []
        publish = changes.publish

        async def recording(published: Iterable[Change]) -> None:
            seen_at_publish.append(len(lockout.settled))
            await publish(published)

        changes.publish = recording  # type: ignore[method-assign,assignment]
        await delivery.check_code(check_id)
        assert (await load_check(delivery, check_id)).status is CheckStatus.REJECTED
        assert seen_at_publish and seen_at_publish[0] == 1, "settled before the waiter woke"
