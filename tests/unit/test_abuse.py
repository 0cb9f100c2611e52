"""Re-sends, cancels and the lockout, against fakes."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
from sqlalchemy import select

from shared.audit.domain import EventType
from shared.audit.models import Event
from shared.errors import (
    CountryNotAllowed,
    ProviderPermanentError,
    UserLocked,
    VerificationNotPending,
)
from shared.kit.settings import Settings
from shared.limits.ports import Guards
from shared.tenants.models import ApiKey
from shared.verifications.code_jobs import CodeJobs
from shared.verifications.domain import Channel, CheckStatus, VerificationStatus
from shared.verifications.models import Verification
from shared.verifications.service import VerificationRequest, Verifications
from tests.fakes import (
    FakeActionLimit,
    FakeClock,
    FakeCodeStash,
    FakeJobQueue,
    FakeLockout,
    FakeSendLimits,
    FakeVerifyClient,
)
from tests.unit.test_code_jobs import TO, load, load_check, pending, queued, submit


async def resend(
    code_jobs: CodeJobs,
    verifications: Verifications,
    key: ApiKey,
    verification_id: uuid.UUID,
    channel: Channel | None = None,
) -> Verification:
    async with code_jobs.uow_factory() as uow:
        return await verifications.resend(uow, key, verification_id, channel)


class TestResend:
    async def test_the_same_code_again_by_call_while_staying_pending(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        job_queue: FakeJobQueue,
    ) -> None:
        verification_id = await pending(code_jobs, verifications, key)
        first_sid = (await load(code_jobs, verification_id)).provider_sid
        job_queue.published.clear()
        waiting = await resend(code_jobs, verifications, key, verification_id, Channel.CALL)
        assert (waiting.status, waiting.resend_channel) == (
            VerificationStatus.PENDING,
            Channel.CALL,
        )
        assert [job.entity_id for job in job_queue.published] == [verification_id]
        again = await resend(code_jobs, verifications, key, verification_id)
        assert again.resend_channel is Channel.CALL
        assert len(job_queue.published) == 1, "a waiting re-send was doubled"

        assert await code_jobs.send_code(verification_id) is None
        row = await load(code_jobs, verification_id)
        assert (row.status, row.channel, row.resend_channel) == (
            VerificationStatus.PENDING,
            Channel.CALL,
            None,
        )
        assert row.send_attempts == 2 and row.provider_sid == first_sid
        assert len(verify.pending_to(TO).sends) == 2

    async def test_a_failed_resend_keeps_the_first_code_usable_and_is_in_the_trail(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        verification_id = await pending(code_jobs, verifications, key)
        await resend(code_jobs, verifications, key, verification_id)
        verify.fail_next(ProviderPermanentError("blocked", provider_code=60410))
        assert await code_jobs.send_code(verification_id) is None
        row = await load(code_jobs, verification_id)
        assert (row.status, row.resend_channel, row.send_attempts) == (
            VerificationStatus.PENDING,
            None,
            1,
        )
        async with code_jobs.uow_factory() as uow:
            events = (
                await uow.session.scalars(
                    select(Event).where(Event.verification_id == verification_id).order_by(Event.id)
                )
            ).all()
        assert [event.type for event in events] == [
            EventType.VERIFICATION_REQUESTED,
            EventType.VERIFICATION_SENT,
            EventType.VERIFICATION_RESEND_REQUESTED,
            EventType.VERIFICATION_RESEND_FAILED,
        ]

    async def test_only_a_pending_verification_can_be_sent_again(
        self, code_jobs: CodeJobs, verifications: Verifications, key: ApiKey
    ) -> None:
        verification_id = await queued(code_jobs, verifications, key, "+14155550124")
        with pytest.raises(VerificationNotPending):
            await resend(code_jobs, verifications, key, verification_id)

    async def test_checks_go_on_during_a_resend(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        verification_id = await pending(code_jobs, verifications, key)
        await resend(code_jobs, verifications, key, verification_id)
        check_id = await submit(code_jobs, verifications, verification_id, verify.sent_codes[TO])
        assert await code_jobs.check_code(check_id) is None
        assert (await load_check(code_jobs, check_id)).status is CheckStatus.APPROVED
        # The re-send that was waiting finds the verification over and sends nothing.
        assert await code_jobs.send_code(verification_id) is None
        assert (await load(code_jobs, verification_id)).status is VerificationStatus.APPROVED
        assert verify.count("start") == 1


class TestCancel:
    async def test_a_cancel_ends_it_and_a_late_send_outcome_is_dropped(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
    ) -> None:
        verification_id = await queued(code_jobs, verifications, key)
        async with code_jobs.uow_factory() as uow:
            canceled = await verifications.cancel(uow, key, verification_id)
        assert canceled.status is VerificationStatus.CANCELED
        assert await code_jobs.send_code(verification_id) is None
        assert (await load(code_jobs, verification_id)).status is VerificationStatus.CANCELED
        assert verify.calls == []
        async with code_jobs.uow_factory() as uow:
            again = await verifications.cancel(uow, key, verification_id)
        assert again.status is VerificationStatus.CANCELED

    async def test_an_approved_verification_cannot_be_canceled(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        clock: FakeClock,
    ) -> None:
        verification_id = await pending(code_jobs, verifications, key)
        async with code_jobs.uow_factory() as uow:
            assert await uow.verifications.approve(verification_id, clock.now())
        async with code_jobs.uow_factory() as uow:
            with pytest.raises(VerificationNotPending):
                await verifications.cancel(uow, key, verification_id)


class TestLockout:
    async def test_wrong_codes_count_and_a_right_one_resets(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        verify: FakeVerifyClient,
        guards: Guards,
    ) -> None:
        lockout = guards.lockout
        assert isinstance(lockout, FakeLockout)
        async with code_jobs.uow_factory() as uow:
            verification = await verifications.request(
                uow, key, VerificationRequest(to=TO, user_id="user-7")
            )
        await code_jobs.send_code(verification.id)

        async def check(code: str) -> None:
            await code_jobs.check_code(
                await submit(code_jobs, verifications, verification.id, code)
            )

        wrong = "000000" if verify.sent_codes[TO] != "000000" else "111111"
        await check(wrong)
        await check(wrong)
        assert lockout.failures == {"user-7": 2}
        await check(verify.sent_codes[TO])
        assert lockout.failures == {}

    async def test_a_locked_user_cannot_check_and_leaves_no_code_behind(
        self,
        code_jobs: CodeJobs,
        verifications: Verifications,
        key: ApiKey,
        guards: Guards,
        stash: FakeCodeStash,
    ) -> None:
        async with code_jobs.uow_factory() as uow:
            verification = await verifications.request(
                uow, key, VerificationRequest(to=TO, user_id="user-8")
            )
        await code_jobs.send_code(verification.id)
        assert isinstance(guards.lockout, FakeLockout)
        guards.lockout.locked.add("user-8")
        with pytest.raises(UserLocked):
            await submit(code_jobs, verifications, verification.id, "123456")
        assert (await load(code_jobs, verification.id)).check_attempts == 0
        assert stash.codes == {}


async def test_countries_off_the_allow_list_are_refused_before_anything(
    code_jobs: CodeJobs,
    verifications: Verifications,
    key: ApiKey,
    job_queue: FakeJobQueue,
    unit_settings: Settings,
) -> None:
    settings = unit_settings.model_copy(update={"allowed_countries": frozenset({"GB", "IE"})})
    sends = FakeSendLimits()
    refusing = replace(
        verifications,
        settings=settings,
        guards=Guards(sends, FakeLockout(), FakeActionLimit()),
    )
    async with code_jobs.uow_factory() as uow:
        with pytest.raises(CountryNotAllowed, match="US"):
            await refusing.request(uow, key, VerificationRequest(to=TO))
        assert not uow.session.new
    assert sends.admitted == [] and job_queue.published == []
