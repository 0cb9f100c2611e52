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
from shared.verifications.code_jobs import CodeJobs, RetryLater
from shared.verifications.domain import CheckStatus, Purpose, VerificationStatus
from shared.verifications.service import VerificationRequest, Verifications
from tests.fakes import FakeChangeFeed, FakeClock, FakeJobQueue, FakeLockout, FakeVerifyClient
from tests.unit.test_code_jobs import TO, events, load, load_check, pending, queued, submit


class TestSuperseding:
    async def test_a_new_verification_ends_the_earlier_one_here_and_at_twilio(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        first = await pending(code_jobs, verifications, key)
        first_sid = (await load(code_jobs, first)).provider_sid
        first_code = verify.sent_codes[TO]
        clock.advance(1)
        second = await pending(code_jobs, verifications, key)
        earlier, later = await load(code_jobs, first), await load(code_jobs, second)
        assert (earlier.status, earlier.error_code) == (VerificationStatus.CANCELED, "superseded")
        assert later.provider_sid != first_sid, "the new verification is Twilio's new one"
        assert verify.count("cancel") == 1 and not earlier.provider_open
        # The earlier code is no good for the new verification, and the earlier verification
        # takes no more checks.
        check = await submit(code_jobs, verifications, second, first_code)
        await code_jobs.check_code(check)
        if verify.sent_codes[TO] != first_code:
            assert (await load_check(code_jobs, check)).status is CheckStatus.REJECTED

    async def test_of_two_waiting_to_be_sent_only_the_newer_is_sent(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        older = await queued(code_jobs, verifications, key)
        clock.advance(1)
        newer = await queued(code_jobs, verifications, key)
        assert await code_jobs.send_code(older) is None
        assert await code_jobs.send_code(newer) is None
        ended = await load(code_jobs, older)
        assert (ended.status, ended.error_code) == (VerificationStatus.CANCELED, "superseded")
        assert (await load(code_jobs, newer)).status is VerificationStatus.PENDING
        assert verify.count("start") == 1, "the superseded one was never sent"

    async def test_a_send_waits_while_another_call_on_its_number_is_in_flight(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        older = await queued(code_jobs, verifications, key)
        async with code_jobs.uow_factory() as uow:  # a worker is sending it right now
            now = clock.now()
            assert await uow.verifications.claim(older, now=now, until=now + timedelta(seconds=30))
        clock.advance(1)
        newer = await queued(code_jobs, verifications, key)
        outcome = await code_jobs.send_code(newer)
        assert isinstance(outcome, RetryLater)
        assert verify.count("start") == 0 and verify.count("cancel") == 0
        row = await load(code_jobs, newer)
        assert (row.status, row.provider_attempts) == (VerificationStatus.QUEUED, 0)

    async def test_other_tenants_and_other_numbers_are_left_alone(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        other_key = await _key_of_new_tenant(code_jobs, verify, "other-tenant")
        mine = await pending(code_jobs, verifications, key)
        theirs = await pending(code_jobs, verifications, other_key)
        elsewhere = await pending(code_jobs, verifications, key, to="+14155550199")
        for verification_id in (mine, theirs, elsewhere):
            assert (await load(code_jobs, verification_id)).status is VerificationStatus.PENDING
        assert verify.count("cancel") == 0
        assert (await load(code_jobs, mine)).provider_sid != (
            await load(code_jobs, theirs)
        ).provider_sid, "two tenants, one number: two Twilio verifications"


class TestClosingAtTwilio:
    async def test_a_canceled_verification_is_canceled_at_twilio_by_a_job(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        job_queue: FakeJobQueue,
    ) -> None:
        verification_id = await pending(code_jobs, verifications, key)
        async with code_jobs.uow_factory() as uow:
            await verifications.cancel(uow, key, verification_id)
        (close,) = [job for job in job_queue.published if job.name == CLOSE_VERIFICATION]
        assert close.entity_id == verification_id
        assert await code_jobs.close_verification(verification_id) is None
        assert verify.count("cancel") == 1 and not verify.has_pending(TO)
        assert not (await load(code_jobs, verification_id)).provider_open
        # Once closed, closing again calls nobody.
        assert await code_jobs.close_verification(verification_id) is None
        assert verify.count("cancel") == 1

    async def test_a_failed_cancel_is_retried_until_twilio_would_have_ended_it(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        verification_id = await pending(code_jobs, verifications, key)
        async with code_jobs.uow_factory() as uow:
            await verifications.cancel(uow, key, verification_id)
        verify.fail_next(ProviderTransientError("cancel: 503"))
        assert isinstance(await code_jobs.close_verification(verification_id), RetryLater)
        assert (await load(code_jobs, verification_id)).provider_open
        clock.advance(11 * 60)
        verify.fail_next(ProviderTransientError("cancel: 503"))
        assert await code_jobs.close_verification(verification_id) is None
        assert not (await load(code_jobs, verification_id)).provider_open


class TestTenantsServices:
    async def test_each_tenant_sends_through_its_own_service(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        other_key = await _key_of_new_tenant(code_jobs, verify, "apart")
        await pending(code_jobs, verifications, key)
        await pending(code_jobs, verifications, other_key)
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
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        verify.line_types[TO] = "nonFixedVoip"
        on = _number_checks(code_jobs, line_type=True)
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
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        clock: FakeClock,
    ) -> None:
        on = _number_checks(code_jobs, sim_swap=True)
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
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        on = _number_checks(code_jobs, line_type=True)
        verification_id = await _queued_for(on, verifications, key, Purpose.ENROLLMENT)
        verify.fail_next(ProviderTransientError("lookup: 503"))
        assert isinstance(await on.send_code(verification_id), RetryLater)
        assert verify.count("start") == 0
        row = await load(on, verification_id)
        assert row.status is VerificationStatus.QUEUED
        assert row.error_code == ErrorCode.PROVIDER_UNAVAILABLE.value


def _number_checks(
    code_jobs: CodeJobs, *, line_type: bool = False, sim_swap: bool = False
) -> CodeJobs:
    settings = code_jobs.settings.model_copy(
        update={"line_type_check": line_type, "sim_swap_check": sim_swap}
    )
    numbers = type(code_jobs.numbers)(
        code_jobs.numbers.lookup,
        code_jobs.numbers.line_types,
        code_jobs.numbers.keyring,
        settings,
        code_jobs.clock,
    )
    tenants = type(code_jobs.tenants)(
        code_jobs.uow_factory.reading, settings, FakeVerifyClient.default_service, 0.001
    )
    return CodeJobs(
        **{**vars(code_jobs), "settings": settings, "numbers": numbers, "tenants": tenants}
    )


async def _queued_for(
    code_jobs: CodeJobs,
    verifications: Verifications,
    key: ApiKey,
    purpose: Purpose,
    user_id: str | None = None,
) -> uuid.UUID:
    async with code_jobs.uow_factory() as uow:
        verification = await verifications.request(
            uow, key, VerificationRequest(to=TO, purpose=purpose, user_id=user_id)
        )
    return verification.id


async def _key_of_new_tenant(code_jobs: CodeJobs, verify: FakeVerifyClient, name: str) -> ApiKey:
    service = await provision_service(verify, NewTenant(name))
    async with code_jobs.uow_factory() as uow:
        await create_tenant(uow, NewTenant(name), service)
        key, _ = await create_api_key(uow, f"{name}-key", tenant=name)
    return key


class TestWakingAfterTheLockoutCounted:
    async def test_a_waiter_woken_by_a_wrong_code_finds_it_counted(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        guards: Guards,
        changes: FakeChangeFeed,
    ) -> None:
        """The check's answer wakes its long-poll; a login started the moment it answers must
        find the lock that answer caused."""
        verification_id = await pending(code_jobs, verifications, key)
        check_id = await submit(code_jobs, verifications, verification_id, "999999")
        lockout = guards.lockout
        assert isinstance(lockout, FakeLockout)
        seen_at_publish: list[int] = []
        publish = changes.publish

        async def recording(published: Iterable[Change]) -> None:
            seen_at_publish.append(len(lockout.settled))
            await publish(published)

        changes.publish = recording  # type: ignore[method-assign,assignment]
        await code_jobs.check_code(check_id)
        assert (await load_check(code_jobs, check_id)).status is CheckStatus.REJECTED
        assert seen_at_publish and seen_at_publish[0] == 1, "settled before the waiter woke"
