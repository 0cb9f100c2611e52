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
from shared.kit.attempts import RetryLater
from shared.kit.changes import Change
from shared.kit.jobs import CLOSE_VERIFICATION
from shared.tenants.keys import create_api_key
from shared.tenants.models import ApiKey
from shared.tenants.service import NewTenant, create_tenant, provision_service
from shared.verifications.domain import CheckStatus, Purpose, VerificationStatus
from shared.verifications.service import VerificationRequest
from tests.unit.test_code_jobs import TO, events, load, load_check, pending, queued, submit
from tests.unit.world import MakeWorld, World


class TestSuperseding:
    async def test_a_new_verification_ends_the_earlier_one_here_and_at_twilio(
        self, world: World
    ) -> None:
        first = await pending(world)
        first_sid = (await load(world, first)).provider_sid
        first_code = world.verify.sent_codes[TO]
        world.clock.advance(1)
        second = await pending(world)
        earlier, later = await load(world, first), await load(world, second)
        assert (earlier.status, earlier.error_code) == (VerificationStatus.CANCELED, "superseded")
        assert later.provider_sid != first_sid, "the new verification is Twilio's new one"
        assert world.verify.count("cancel") == 1 and not earlier.provider_open
        # The earlier code is no good for the new verification, and the earlier verification
        # takes no more checks.
        check = await submit(world, second, first_code)
        await world.code_jobs.check_code(check)
        if world.verify.sent_codes[TO] != first_code:
            assert (await load_check(world, check)).status is CheckStatus.REJECTED

    async def test_of_two_waiting_to_be_sent_only_the_newer_is_sent(self, world: World) -> None:
        older = await queued(world)
        world.clock.advance(1)
        newer = await queued(world)
        assert await world.code_jobs.send_code(older) is None
        assert await world.code_jobs.send_code(newer) is None
        ended = await load(world, older)
        assert (ended.status, ended.error_code) == (VerificationStatus.CANCELED, "superseded")
        assert (await load(world, newer)).status is VerificationStatus.PENDING
        assert world.verify.count("start") == 1, "the superseded one was never sent"

    async def test_a_send_waits_while_another_call_on_its_number_is_in_flight(
        self, world: World
    ) -> None:
        older = await queued(world)
        async with world.uow_factory() as uow:  # a worker is sending it right now
            now = world.clock.now()
            assert await uow.verifications.claim(older, now=now, until=now + timedelta(seconds=30))
        world.clock.advance(1)
        newer = await queued(world)
        outcome = await world.code_jobs.send_code(newer)
        assert isinstance(outcome, RetryLater)
        assert world.verify.count("start") == 0 and world.verify.count("cancel") == 0
        row = await load(world, newer)
        assert (row.status, row.provider_attempts) == (VerificationStatus.QUEUED, 0)

    async def test_other_tenants_and_other_numbers_are_left_alone(self, world: World) -> None:
        other_key = await _key_of_new_tenant(world, "other-tenant")
        mine = await pending(world)
        theirs = await pending(world, key=other_key)
        elsewhere = await pending(world, to="+14155550199")
        for verification_id in (mine, theirs, elsewhere):
            assert (await load(world, verification_id)).status is VerificationStatus.PENDING
        assert world.verify.count("cancel") == 0
        assert (await load(world, mine)).provider_sid != (await load(world, theirs)).provider_sid, (
            "two tenants, one number: two Twilio verifications"
        )


class TestClosingAtTwilio:
    async def test_a_canceled_verification_is_canceled_at_twilio_by_a_job(
        self, world: World
    ) -> None:
        verification_id = await pending(world)
        async with world.uow_factory() as uow:
            await world.verifications.cancel(uow, world.key, verification_id)
        (close,) = [job for job in world.jobs.published if job.name == CLOSE_VERIFICATION]
        assert close.entity_id == verification_id
        assert await world.code_jobs.close_verification(verification_id) is None
        assert world.verify.count("cancel") == 1 and not world.verify.has_pending(TO)
        assert not (await load(world, verification_id)).provider_open
        # Once closed, closing again calls nobody.
        assert await world.code_jobs.close_verification(verification_id) is None
        assert world.verify.count("cancel") == 1

    async def test_a_failed_cancel_is_retried_until_twilio_would_have_ended_it(
        self, world: World
    ) -> None:
        verification_id = await pending(world)
        async with world.uow_factory() as uow:
            await world.verifications.cancel(uow, world.key, verification_id)
        world.verify.fail_next(ProviderTransientError("cancel: 503"))
        assert isinstance(await world.code_jobs.close_verification(verification_id), RetryLater)
        assert (await load(world, verification_id)).provider_open
        world.clock.advance(11 * 60)
        world.verify.fail_next(ProviderTransientError("cancel: 503"))
        assert await world.code_jobs.close_verification(verification_id) is None
        assert not (await load(world, verification_id)).provider_open


class TestTenantsServices:
    async def test_each_tenant_sends_through_its_own_service(self, world: World) -> None:
        other_key = await _key_of_new_tenant(world, "apart")
        await pending(world)
        await pending(world, key=other_key)
        services = {service for service, _to in world.verify.pending}
        assert len(services) == 2 and world.verify.default_service in services

    async def test_a_service_with_short_codes_is_refused(self, world: World) -> None:
        short = await world.verify.create_service("four digits", 4)
        with pytest.raises(InvalidInput, match="at least 6"):
            await provision_service(world.verify, NewTenant("shorty", service_sid=short.sid))

    async def test_a_display_name_twilio_would_refuse_is_refused(self, world: World) -> None:
        with pytest.raises(InvalidInput, match="display name"):
            await provision_service(world.verify, NewTenant("t", display_name="Call 0800 12345"))


class TestNumberChecks:
    """Each test runs in a world of its own whose settings turn a check on."""

    async def test_a_voip_number_cannot_enrol_and_its_type_is_remembered(
        self, make_world: MakeWorld
    ) -> None:
        on = await make_world(line_type_check=True)
        on.verify.line_types[TO] = "nonFixedVoip"
        for _ in range(2):
            verification_id = await _queued_for(on, Purpose.ENROLLMENT)
            assert await on.code_jobs.send_code(verification_id) is None
            row = await load(on, verification_id)
            assert (row.status, row.error_code) == (
                VerificationStatus.FAILED,
                "line_type_not_allowed",
            )
        assert on.verify.count("lookup") == 1, "a line type is looked up once"
        assert list(on.line_types.known.values()) == ["nonFixedVoip"]
        assert on.verify.count("start") == 0

    async def test_a_recently_swapped_sim_gets_no_login_code(self, make_world: MakeWorld) -> None:
        on = await make_world(sim_swap_check=True)
        on.verify.swapped_at[TO] = on.clock.now() - timedelta(hours=1)
        verification_id = await _queued_for(on, Purpose.LOGIN, "u1")
        assert await on.code_jobs.send_code(verification_id) is None
        row = await load(on, verification_id)
        assert (row.status, row.error_code) == (VerificationStatus.FAILED, "sim_swap_detected")
        assert on.verify.count("start") == 0
        # A swap older than the window is no reason to refuse.
        on.verify.swapped_at[TO] = on.clock.now() - timedelta(days=30)
        again = await _queued_for(on, Purpose.LOGIN, "u1")
        assert await on.code_jobs.send_code(again) is None
        assert (await load(on, again)).status is VerificationStatus.PENDING
        assert EventType.VERIFICATION_FAILED in await events(on, "u1")

    async def test_lookup_down_retries_and_sends_nothing_meanwhile(
        self, make_world: MakeWorld
    ) -> None:
        on = await make_world(line_type_check=True)
        verification_id = await _queued_for(on, Purpose.ENROLLMENT)
        on.verify.fail_next(ProviderTransientError("lookup: 503"))
        assert isinstance(await on.code_jobs.send_code(verification_id), RetryLater)
        assert on.verify.count("start") == 0
        row = await load(on, verification_id)
        assert row.status is VerificationStatus.QUEUED
        assert row.error_code == ErrorCode.PROVIDER_UNAVAILABLE.value


async def _queued_for(world: World, purpose: Purpose, user_id: str | None = None) -> uuid.UUID:
    async with world.uow_factory() as uow:
        verification = await world.verifications.request(
            uow, world.key, VerificationRequest(to=TO, purpose=purpose, user_id=user_id)
        )
    return verification.id


async def _key_of_new_tenant(world: World, name: str) -> ApiKey:
    service = await provision_service(world.verify, NewTenant(name))
    async with world.uow_factory() as uow:
        await create_tenant(uow, NewTenant(name), service)
        key, _ = await create_api_key(uow, f"{name}-key", tenant=name)
    return key


class TestWakingAfterTheLockoutCounted:
    async def test_a_waiter_woken_by_a_wrong_code_finds_it_counted(self, world: World) -> None:
        """The check's answer wakes its long-poll; a login started the moment it answers must
        find the lock that answer caused."""
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, "999999")
        lockout = world.lockout
        seen_at_publish: list[int] = []
        publish = world.changes.publish

        async def recording(published: Iterable[Change]) -> None:
            seen_at_publish.append(len(lockout.settled))
            await publish(published)

        world.changes.publish = recording  # type: ignore[method-assign,assignment]
        await world.code_jobs.check_code(check_id)
        assert (await load_check(world, check_id)).status is CheckStatus.REJECTED
        assert seen_at_publish and seen_at_publish[0] == 1, "settled before the waiter woke"
