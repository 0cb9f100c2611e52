"""Re-sends, cancels and the lockout, against fakes."""

from __future__ import annotations

import uuid

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
from shared.verifications.domain import Channel, CheckStatus, VerificationStatus
from shared.verifications.models import Verification
from shared.verifications.service import VerificationRequest
from tests.unit.test_code_jobs import TO, load, load_check, pending, queued, submit
from tests.unit.world import MakeWorld, World


async def resend(
    world: World, verification_id: uuid.UUID, channel: Channel | None = None
) -> Verification:
    async with world.uow_factory() as uow:
        return await world.verifications.resend(uow, world.key, verification_id, channel)


class TestResend:
    async def test_the_same_code_again_by_call_while_staying_pending(self, world: World) -> None:
        verification_id = await pending(world)
        first_sid = (await load(world, verification_id)).provider_sid
        world.jobs.published.clear()
        waiting = await resend(world, verification_id, Channel.CALL)
        assert (waiting.status, waiting.resend_channel) == (
            VerificationStatus.PENDING,
            Channel.CALL,
        )
        assert [job.entity_id for job in world.jobs.published] == [verification_id]
        again = await resend(world, verification_id)
        assert again.resend_channel is Channel.CALL
        assert len(world.jobs.published) == 1, "a waiting re-send was doubled"

        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert (row.status, row.channel, row.resend_channel) == (
            VerificationStatus.PENDING,
            Channel.CALL,
            None,
        )
        assert row.send_attempts == 2 and row.provider_sid == first_sid
        assert len(world.verify.pending_to(TO).sends) == 2

    async def test_a_failed_resend_keeps_the_first_code_usable_and_is_in_the_trail(
        self, world: World
    ) -> None:
        verification_id = await pending(world)
        await resend(world, verification_id)
        world.verify.fail_next(ProviderPermanentError("blocked", provider_code=60410))
        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert (row.status, row.resend_channel, row.send_attempts) == (
            VerificationStatus.PENDING,
            None,
            1,
        )
        async with world.uow_factory() as uow:
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

    async def test_only_a_pending_verification_can_be_sent_again(self, world: World) -> None:
        verification_id = await queued(world, "+14155550124")
        with pytest.raises(VerificationNotPending):
            await resend(world, verification_id)

    async def test_checks_go_on_during_a_resend(self, world: World) -> None:
        verification_id = await pending(world)
        await resend(world, verification_id)
        check_id = await submit(world, verification_id, world.verify.sent_codes[TO])
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.APPROVED
        # The re-send that was waiting finds the verification over and sends nothing.
        assert await world.code_jobs.send_code(verification_id) is None
        assert (await load(world, verification_id)).status is VerificationStatus.APPROVED
        assert world.verify.count("start") == 1


class TestCancel:
    async def test_a_cancel_ends_it_and_a_late_send_outcome_is_dropped(self, world: World) -> None:
        verification_id = await queued(world)
        async with world.uow_factory() as uow:
            canceled = await world.verifications.cancel(uow, world.key, verification_id)
        assert canceled.status is VerificationStatus.CANCELED
        assert await world.code_jobs.send_code(verification_id) is None
        assert (await load(world, verification_id)).status is VerificationStatus.CANCELED
        assert world.verify.calls == []
        async with world.uow_factory() as uow:
            again = await world.verifications.cancel(uow, world.key, verification_id)
        assert again.status is VerificationStatus.CANCELED

    async def test_an_approved_verification_cannot_be_canceled(self, world: World) -> None:
        verification_id = await pending(world)
        async with world.uow_factory() as uow:
            assert await uow.verifications.approve(verification_id, world.clock.now())
        async with world.uow_factory() as uow:
            with pytest.raises(VerificationNotPending):
                await world.verifications.cancel(uow, world.key, verification_id)


class TestLockout:
    async def test_wrong_codes_count_and_a_right_one_resets(self, world: World) -> None:
        lockout = world.lockout
        async with world.uow_factory() as uow:
            verification = await world.verifications.request(
                uow, world.key, VerificationRequest(to=TO, user_id="user-7")
            )
        await world.code_jobs.send_code(verification.id)

        async def check(code: str) -> None:
            await world.code_jobs.check_code(await submit(world, verification.id, code))

        wrong = "000000" if world.verify.sent_codes[TO] != "000000" else "111111"
        await check(wrong)
        await check(wrong)
        assert lockout.failures == {"user-7": 2}
        await check(world.verify.sent_codes[TO])
        assert lockout.failures == {}

    async def test_a_locked_user_cannot_check_and_leaves_no_code_behind(self, world: World) -> None:
        async with world.uow_factory() as uow:
            verification = await world.verifications.request(
                uow, world.key, VerificationRequest(to=TO, user_id="user-8")
            )
        await world.code_jobs.send_code(verification.id)
        world.lockout.locked.add("user-8")
        with pytest.raises(UserLocked):
            await submit(world, verification.id, "123456")
        assert (await load(world, verification.id)).check_attempts == 0
        assert world.stash.codes == {}


async def test_countries_off_the_allow_list_are_refused_before_anything(
    make_world: MakeWorld,
) -> None:
    refusing = await make_world(allowed_countries=frozenset({"GB", "IE"}))
    async with refusing.uow_factory() as uow:
        with pytest.raises(CountryNotAllowed, match="US"):
            await refusing.verifications.request(uow, refusing.key, VerificationRequest(to=TO))
        assert not uow.session.new
    assert refusing.sends.admitted == [] and refusing.jobs.published == []
