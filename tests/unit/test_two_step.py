"""Enrolment, login challenges, recovery codes and the audit trail, against fakes."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from shared.audit.domain import EventType
from shared.errors import (
    InvalidInput,
    NotFound,
    NoVerifiedFactor,
    UserLocked,
)
from shared.two_step.domain import DisabledReason, FactorStatus
from shared.two_step.models import Factor, RecoveryCode
from shared.two_step.service import Enrollment, FactorList
from shared.verifications.domain import CheckStatus, Purpose, VerificationStatus
from shared.verifications.models import Verification
from tests.unit.test_code_jobs import load, load_check, submit
from tests.unit.world import World

USER = "alice"
PHONE = "+14155550123"
OTHER_PHONE = "+14155550124"


async def enroll(
    world: World, phone: str = PHONE, user: str = USER, **options: Any
) -> tuple[Factor, Verification]:
    async with world.uow_factory() as uow:
        return await world.two_step.enroll(uow, world.key, user, Enrollment(phone=phone, **options))


async def approve(world: World, verification_id: uuid.UUID, phone: str = PHONE) -> None:
    assert await world.code_jobs.send_code(verification_id) is None
    check_id = await submit(world, verification_id, world.verify.sent_codes[phone])
    assert await world.code_jobs.check_code(check_id) is None
    assert (await load_check(world, check_id)).status is CheckStatus.APPROVED


async def factors(world: World, user: str = USER) -> FactorList:
    async with world.uow_factory() as uow:
        return await world.two_step.list_factors(uow, world.key, user)


async def event_types(world: World, user: str = USER) -> list[EventType]:
    async with world.uow_factory() as uow:
        page = await world.two_step.list_events(uow, world.key, user, before=None, limit=200)
    return [event.type for event, _ in reversed(page)]


class TestEnrolment:
    async def test_only_an_approved_code_turns_two_step_on(self, world: World) -> None:
        factor, verification = await enroll(world)
        assert factor.status is FactorStatus.UNVERIFIED
        assert verification.purpose is Purpose.ENROLLMENT
        assert not (await factors(world)).two_step_enabled
        await approve(world, verification.id)
        listed = await factors(world)
        assert listed.two_step_enabled and listed.factors[0].status is FactorStatus.VERIFIED
        assert listed.factors[0].verified_at is not None

    async def test_a_failed_enrolment_leaves_two_step_as_it_was(self, world: World) -> None:
        from shared.errors import ProviderPermanentError

        _factor, verification = await enroll(world, "+14155550205")
        world.verify.fail_next(ProviderPermanentError("landline", provider_code=60205))
        await world.code_jobs.send_code(verification.id)
        assert (await load(world, verification.id)).status is VerificationStatus.FAILED
        assert not (await factors(world)).two_step_enabled
        async with world.uow_factory() as uow:
            with pytest.raises(NoVerifiedFactor):
                await world.two_step.start_challenge(uow, world.key, USER)

    async def test_a_new_phone_replaces_the_old_only_once_verified(self, world: World) -> None:
        old, verification = await enroll(world)
        await approve(world, verification.id)
        new, verification = await enroll(world, OTHER_PHONE)
        statuses = {f.id: f.status for f in (await factors(world)).factors}
        assert statuses == {old.id: FactorStatus.VERIFIED, new.id: FactorStatus.UNVERIFIED}
        await approve(world, verification.id, OTHER_PHONE)
        ends = {f.id: (f.status, f.disabled_reason) for f in (await factors(world)).factors}
        assert ends == {
            old.id: (FactorStatus.DISABLED, DisabledReason.REPLACED),
            new.id: (FactorStatus.VERIFIED, None),
        }
        assert EventType.FACTOR_REPLACED in await event_types(world)

    async def test_one_phone_one_account(self, world: World) -> None:
        alices, verification = await enroll(world)
        await approve(world, verification.id)
        # Answered like any enrolment: the phone's owner is not revealed to whoever asks.
        mallorys, verification = await enroll(world, user="mallory")
        assert mallorys.status is FactorStatus.UNVERIFIED
        await approve(world, verification.id)
        listed = await factors(world, "mallory")
        assert not listed.two_step_enabled
        # The login server's owner can tell why; its end user is told only "cannot be used".
        assert [(f.status, f.disabled_reason) for f in listed.factors] == [
            (FactorStatus.DISABLED, DisabledReason.IN_USE)
        ]
        assert EventType.FACTOR_ENROLLMENT_FAILED in await event_types(world, "mallory")
        async with world.uow_factory() as uow:
            with pytest.raises(NoVerifiedFactor, match="disabled_reason"):
                await world.two_step.start_challenge(uow, world.key, "mallory")
        assert [f.id for f in (await factors(world)).factors] == [alices.id]
        assert (await factors(world)).two_step_enabled

    async def test_disabling_turns_it_off_and_cancels_a_pending_enrolment(
        self, world: World
    ) -> None:
        factor, verification = await enroll(world)
        async with world.uow_factory() as uow:
            await world.two_step.disable_factor(uow, world.key, USER, factor.id)
        assert (await load(world, verification.id)).status is VerificationStatus.CANCELED
        disabled = (await factors(world)).factors[0]
        assert (disabled.status, disabled.disabled_reason) == (
            FactorStatus.DISABLED,
            DisabledReason.REMOVED,
        )
        async with world.uow_factory() as uow:
            with pytest.raises(NotFound):
                await world.two_step.disable_factor(uow, world.key, "someone-else", factor.id)

    @pytest.mark.parametrize("user", ["", "x" * 129, "tab\there"])
    async def test_user_ids_are_checked(self, world: World, user: str) -> None:
        with pytest.raises(InvalidInput):
            await enroll(world, user=user)


class TestChallenge:
    async def test_a_login_code_goes_to_the_verified_phone_by_its_channel_or_by_call(
        self, world: World
    ) -> None:
        from shared.verifications.domain import Channel

        _factor, verification = await enroll(world)
        await approve(world, verification.id)
        async with world.uow_factory() as uow:
            challenge = await world.two_step.start_challenge(uow, world.key, USER, Channel.CALL)
        login = challenge.verification
        assert challenge.choice.alternatives == []
        assert (login.purpose, login.destination, login.channel, login.user_id) == (
            Purpose.LOGIN,
            PHONE,
            Channel.CALL,
            USER,
        )


class TestRecoveryCodes:
    async def test_ten_codes_each_good_once(self, world: World) -> None:
        async with world.uow_factory() as uow:
            codes = await world.recovery_codes.generate(uow, world.key, USER)
        async with world.uow_factory() as uow:
            stored = (await uow.session.scalars(select(RecoveryCode))).all()
        assert len(codes) == len(set(codes)) == 10
        assert all(len(code) == 14 and code.count("-") == 2 for code in codes)
        assert sorted(row.selector or "" for row in stored) == sorted(c[:4] for c in codes)
        assert all(code not in row.code_hash for code in codes for row in stored)
        assert all(row.code_hash.startswith("scrypt$") for row in stored)

        async def redeem(code: str) -> bool:
            async with world.uow_factory() as uow:
                return await world.recovery_codes.redeem(uow, world.key, USER, code)

        assert await redeem(codes[3].lower().replace("-", " ")) is True
        assert await redeem(codes[3]) is False
        assert await redeem("not-a-code") is False
        assert world.lockout.failures == {USER: 2}
        async with world.uow_factory() as uow:
            fresh = await world.recovery_codes.generate(uow, world.key, USER)
        assert await redeem(codes[4]) is False, "regenerating must replace the old set"
        assert await redeem(fresh[0]) is True

    async def test_a_locked_user_cannot_redeem(self, world: World) -> None:
        async with world.uow_factory() as uow:
            codes = await world.recovery_codes.generate(uow, world.key, USER)
        world.lockout.locked.add(USER)
        async with world.uow_factory() as uow:
            with pytest.raises(UserLocked):
                await world.recovery_codes.redeem(uow, world.key, USER, codes[0])


async def test_the_trail_records_each_step_and_no_code(world: World) -> None:
    _factor, verification = await enroll(world)
    await approve(world, verification.id)
    assert await event_types(world) == [
        EventType.VERIFICATION_REQUESTED,
        EventType.FACTOR_ENROLLMENT_STARTED,
        EventType.VERIFICATION_SENT,
        EventType.VERIFICATION_APPROVED,
        EventType.FACTOR_VERIFIED,
    ]
    async with world.uow_factory() as uow:
        rows = await world.two_step.list_events(uow, world.key, USER, before=None, limit=200)
    assert all(event.destination == "+1415•••••23" for event, _ in rows)
    assert all(name == "unit" for _, name in rows)
    assert world.verify.sent_codes[PHONE] not in str([(e.detail, e.destination) for e, _ in rows])
