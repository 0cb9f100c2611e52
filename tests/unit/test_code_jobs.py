"""The worker-side use cases, against fakes: what is sent, how often, and what is recorded.
Time is a fake clock: deadlines pass and backoffs elapse without a test sleeping."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import update

from shared.audit.domain import EventType
from shared.errors import (
    CheckAttemptsExhausted,
    ErrorCode,
    InvalidInput,
    ProviderFinalError,
    ProviderPermanentError,
    ProviderTransientError,
    VerificationNotPending,
)
from shared.kit.attempts import RetryLater
from shared.kit.changes import Change
from shared.kit.clock import utcnow
from shared.kit.jobs import PublishFailed
from shared.limits.ports import Guards, Guesser, SendRequest
from shared.tenants.domain import DEFAULT_TENANT
from shared.tenants.models import ApiKey
from shared.unit_of_work import UnitOfWork
from shared.verifications.domain import CheckStatus, VerificationStatus
from shared.verifications.models import Verification, VerificationCheck
from shared.verifications.service import VerificationRequest
from tests.fakes import FakeActionLimit, FakeLockout, FakeSendLimits
from tests.unit.world import World

TO = "+14155550123"


async def queued(world: World, to: str = TO, *, key: ApiKey | None = None) -> uuid.UUID:
    """A verification to ``to`` asked for by ``key`` (the world's own by default)."""
    async with world.uow_factory() as uow:
        verification = await world.verifications.request(
            uow, key or world.key, VerificationRequest(to=to)
        )
    return verification.id


async def load(world: World, verification_id: uuid.UUID) -> Verification:
    async with world.uow_factory() as uow:
        row = await uow.verifications.get(verification_id)
        assert row is not None
        return row


async def load_check(world: World, check_id: uuid.UUID) -> VerificationCheck:
    async with world.uow_factory() as uow:
        row = await uow.checks.get(check_id)
        assert row is not None
        return row


async def pending(world: World, to: str = TO, *, key: ApiKey | None = None) -> uuid.UUID:
    verification_id = await queued(world, to, key=key)
    assert await world.code_jobs.send_code(verification_id) is None
    assert (await load(world, verification_id)).status is VerificationStatus.PENDING
    return verification_id


async def submit(world: World, verification_id: uuid.UUID, code: str) -> uuid.UUID:
    """Submit a code as the key that asked for the verification."""
    async with world.uow_factory() as uow:
        verification = await uow.verifications.get(verification_id)
        assert verification is not None
        key = await uow.session.get(ApiKey, verification.api_key_id)
        assert key is not None
        check = await world.verifications.submit_check(uow, key, verification_id, code)
    return check.id


async def events(world: World, user_id: str) -> list[EventType]:
    async with world.uow_factory() as uow:
        tenant = await uow.tenants.get_or_create(DEFAULT_TENANT, utcnow())
        page = await uow.events.page_for_user(tenant.id, user_id, before=None, limit=100)
    return [event.type for event, _ in reversed(page)]


def wrong_for(world: World, to: str = TO) -> str:
    return "000000" if world.verify.sent_codes[to] != "000000" else "111111"


class TestSendCode:
    async def test_sends_once_records_the_pending_verification_and_wakes_waiters(
        self, world: World
    ) -> None:
        verification_id = await queued(world)
        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert row.status is VerificationStatus.PENDING
        assert row.provider_sid == world.verify.pending_to(TO).sid
        assert row.send_attempts == 1 and row.provider_attempts == 1
        assert row.claim_token is None and row.provider_call_started_at is None
        assert row.expires_at is not None
        assert row.expires_at - row.created_at == pytest.approx(
            timedelta(minutes=10), abs=timedelta(seconds=5)
        )
        assert world.verify.count("start") == 1
        assert world.changes.published == [verification_id]
        assert (world.gate.entered, world.gate.held) == (1, set()), (
            "the gate's slot was not given back"
        )

    async def test_a_redelivered_job_sends_nothing_more(self, world: World) -> None:
        verification_id = await queued(world)
        for _ in range(3):
            assert await world.code_jobs.send_code(verification_id) is None
        assert world.verify.count("start") == 1
        assert (await load(world, verification_id)).provider_attempts == 1

    async def test_a_transient_error_commits_its_bookkeeping_and_asks_for_a_retry(
        self, world: World
    ) -> None:
        verification_id = await queued(world)
        world.verify.fail_next(ProviderTransientError("503", provider_code=20503, status=503))
        outcome = await world.code_jobs.send_code(verification_id)
        assert isinstance(outcome, RetryLater)
        assert 0.25 <= outcome.countdown <= 0.5
        row = await load(world, verification_id)
        assert row.status is VerificationStatus.QUEUED
        assert row.provider_attempts == 1
        assert (row.error_code, row.provider_error_code) == ("provider_unavailable", 20503)
        assert row.provider_call_started_at is None  # a 503 is a refusal: nothing to reconcile

        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert row.status is VerificationStatus.PENDING and row.provider_attempts == 2
        assert row.error_code is None
        assert world.verify.count("find") == 0 and world.verify.count("start") == 2

    async def test_retry_after_from_the_provider_is_honoured(self, world: World) -> None:
        verification_id = await queued(world)
        world.verify.fail_next(
            ProviderTransientError("slow down", provider_code=20429, retry_after=3.0)
        )
        outcome = await world.code_jobs.send_code(verification_id)
        assert isinstance(outcome, RetryLater) and outcome.countdown >= 3.0

    async def test_a_lost_answer_is_reconciled_instead_of_sending_again(self, world: World) -> None:
        verification_id = await queued(world)
        world.verify.lose_next_answer()
        assert isinstance(await world.code_jobs.send_code(verification_id), RetryLater)
        assert (await load(world, verification_id)).provider_call_started_at is not None

        world.clock.advance(1)
        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert row.status is VerificationStatus.PENDING
        assert row.provider_sid == world.verify.pending_to(TO).sid
        assert len(world.verify.pending_to(TO).sends) == 1, "the user got a second SMS"
        assert (world.verify.count("start"), world.verify.count("find")) == (1, 1)

    async def test_an_ambiguous_error_that_sent_nothing_sends_after_looking(
        self, world: World
    ) -> None:
        verification_id = await queued(world)
        world.verify.fail_next(ProviderTransientError("reset", ambiguous=True))
        assert isinstance(await world.code_jobs.send_code(verification_id), RetryLater)
        world.clock.advance(1)
        assert await world.code_jobs.send_code(verification_id) is None
        assert (await load(world, verification_id)).status is VerificationStatus.PENDING
        assert (world.verify.count("find"), world.verify.count("start")) == (1, 2)
        assert len(world.verify.pending_to(TO).sends) == 1

    async def test_a_failed_look_keeps_the_reason_to_look(self, world: World) -> None:
        verification_id = await queued(world)
        world.verify.lose_next_answer()
        assert isinstance(await world.code_jobs.send_code(verification_id), RetryLater)
        world.clock.advance(1)
        world.verify.fail_next(ProviderTransientError("503 on the fetch", status=503))
        assert isinstance(await world.code_jobs.send_code(verification_id), RetryLater)
        assert (await load(world, verification_id)).provider_call_started_at is not None
        world.clock.advance(1)
        assert await world.code_jobs.send_code(verification_id) is None
        assert len(world.verify.pending_to(TO).sends) == 1
        assert (world.verify.count("find"), world.verify.count("start")) == (2, 1)

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (
                ProviderPermanentError(
                    "landline", reason=ErrorCode.LANDLINE_NOT_SUPPORTED, provider_code=60205
                ),
                "landline_not_supported",
            ),
            (
                ProviderPermanentError(
                    "fraud", reason=ErrorCode.FRAUD_BLOCKED, provider_code=60410
                ),
                "fraud_blocked",
            ),
            (
                ProviderFinalError(
                    "too many", reason=ErrorCode.MAX_SEND_ATTEMPTS_REACHED, provider_code=60203
                ),
                "max_send_attempts_reached",
            ),
        ],
    )
    async def test_a_refusal_fails_the_verification_after_one_call(
        self, world: World, error: ProviderPermanentError, reason: str
    ) -> None:
        verification_id = await queued(world)
        world.verify.fail_next(error)
        assert await world.code_jobs.send_code(verification_id) is None
        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert row.status is VerificationStatus.FAILED
        assert row.error_code == reason
        assert row.completed_at is not None
        assert world.verify.count("start") == 1

    async def test_past_the_deadline_it_fails_without_calling(self, world: World) -> None:
        verification_id = await queued(world)
        world.clock.advance(world.settings.send_deadline_seconds + 1)
        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert (row.status, row.error_code) == (VerificationStatus.FAILED, "provider_unavailable")
        assert world.verify.calls == []

    async def test_retries_stop_at_the_deadline(self, world: World) -> None:
        verification_id = await queued(world)
        world.clock.advance(world.settings.send_deadline_seconds - 0.1)
        world.verify.fail_next(ProviderTransientError("503", status=503))
        retry = await world.code_jobs.send_code(verification_id)
        assert isinstance(retry, RetryLater)
        assert retry.countdown <= 0.1 + 1e-6, "the last retry must not land past the deadline"
        world.clock.advance(retry.countdown)
        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert (row.status, row.error_code) == (VerificationStatus.FAILED, "provider_unavailable")
        assert row.completed_at is not None and row.completed_at >= row.deadline_at
        assert world.verify.count("start") == 1

    async def test_a_dead_workers_claim_is_taken_over_and_reconciled(self, world: World) -> None:
        verification_id = await queued(world)
        async with world.uow_factory() as uow:
            now = world.clock.now()
            claimed = await uow.verifications.claim(
                verification_id, now=now, until=now + world.settings.claim_lease
            )
            assert claimed is not None
        # The dead worker's call did reach the provider.
        await world.verify.start_verification(
            world.verify.default_service, TO, claimed.channel, None
        )

        world.clock.advance(world.settings.claim_lease_seconds + 1)
        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert row.status is VerificationStatus.PENDING and row.provider_attempts == 2
        assert len(world.verify.pending_to(TO).sends) == 1
        assert world.verify.count("find") == 1

    async def test_a_live_claim_is_left_alone(self, world: World) -> None:
        verification_id = await queued(world)
        async with world.uow_factory() as uow:
            now = world.clock.now()
            assert await uow.verifications.claim(
                verification_id, now=now, until=now + timedelta(seconds=30)
            )
        assert await world.code_jobs.send_code(verification_id) is None
        assert world.verify.calls == []
        assert (await load(world, verification_id)).status is VerificationStatus.SENDING

    async def test_a_resend_keeps_the_verification_pending_and_sends_on_the_new_channel(
        self, world: World
    ) -> None:
        from shared.verifications.domain import Channel

        verification_id = await pending(world)
        world.clock.advance(31)
        async with world.uow_factory() as uow:
            resent = await world.verifications.resend(uow, world.key, verification_id, Channel.CALL)
        assert resent.status is VerificationStatus.PENDING
        assert await world.code_jobs.send_code(verification_id) is None
        row = await load(world, verification_id)
        assert (row.status, row.channel, row.send_attempts) == (
            VerificationStatus.PENDING,
            Channel.CALL,
            2,
        )
        assert row.resend_channel is None and len(world.verify.pending_to(TO).sends) == 2


class TestTheGate:
    async def test_a_short_wait_is_waited_out_in_the_task(self, world: World) -> None:
        verification_id = await queued(world)
        world.gate.waits.extend([0.2, 0.3])
        assert await world.code_jobs.send_code(verification_id) is None
        assert (await load(world, verification_id)).status is VerificationStatus.PENDING
        assert len(world.clock.slept) == 2 and 0.5 <= sum(world.clock.slept) <= 0.75

    async def test_a_long_wait_sends_the_job_back_without_counting_an_attempt(
        self, world: World
    ) -> None:
        verification_id = await queued(world)
        world.gate.waits.append(60.0)
        outcome = await world.code_jobs.send_code(verification_id)
        assert outcome == RetryLater(countdown=60.0)
        row = await load(world, verification_id)
        assert (row.status, row.provider_attempts) == (VerificationStatus.QUEUED, 0)
        assert world.verify.calls == []
        assert await world.code_jobs.send_code(verification_id) is None
        assert (await load(world, verification_id)).provider_attempts == 1


class TestCheckCode:
    async def test_a_wrong_code_is_rejected_and_the_verification_stays_pending(
        self, world: World
    ) -> None:
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, wrong_for(world))
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.REJECTED
        row = await load(world, verification_id)
        assert (row.status, row.check_attempts) == (VerificationStatus.PENDING, 1)
        assert check_id not in world.stash.codes
        assert set(world.changes.published[-2:]) == {check_id, verification_id}

    async def test_the_right_code_approves_both(self, world: World) -> None:
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, world.verify.sent_codes[TO])
        assert await world.code_jobs.check_code(check_id) is None
        check = await load_check(world, check_id)
        assert check.status is CheckStatus.APPROVED and check.completed_at is not None
        assert (await load(world, verification_id)).status is VerificationStatus.APPROVED
        assert world.stash.codes == {}
        assert await world.code_jobs.check_code(check_id) is None
        assert world.verify.count("check") == 1

    async def test_a_lost_code_fails_the_check_and_gives_the_attempt_back(
        self, world: World
    ) -> None:
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, "123456")
        world.stash.codes.clear()  # Redis restarted without persistence
        assert await world.code_jobs.check_code(check_id) is None
        check = await load_check(world, check_id)
        assert (check.status, check.error_code) == (CheckStatus.FAILED, "code_unavailable")
        assert (await load(world, verification_id)).check_attempts == 0
        assert world.verify.count("check") == 0

    @pytest.mark.parametrize("cancel_answered", [True, False])
    async def test_five_wrong_codes_use_up_the_verification(
        self, world: World, cancel_answered: bool
    ) -> None:
        verification_id = await pending(world)
        for attempt in range(5):
            check_id = await submit(world, verification_id, wrong_for(world))
            if attempt == 4 and not cancel_answered:
                world.verify.fail_next(None, ProviderTransientError("cancel: no answer"))
            assert await world.code_jobs.check_code(check_id) is None
        row = await load(world, verification_id)
        assert (row.status, row.error_code) == (
            VerificationStatus.MAX_ATTEMPTS_REACHED,
            "max_check_attempts_reached",
        )
        with pytest.raises(CheckAttemptsExhausted) as sixth:
            await submit(world, verification_id, world.verify.sent_codes[TO])
        assert (sixth.value.code, sixth.value.limit) == (
            "max_attempts_reached",
            "checks_per_verification",
        )
        # Ended at the provider too (best effort: a failed cancel changes nothing above), so
        # the next verification to the number gets a fresh code with checks of its own, not
        # this one's code re-sent with none left.
        assert (
            world.verify.count("cancel") == 1
            and (not world.verify.has_pending(TO)) is cancel_answered
        )
        # Either way, the next verification to the number is a fresh one at the provider: a
        # cancel that failed is made again before it is sent.
        old_sid = row.provider_sid
        following = await pending(world)
        assert (await load(world, following)).provider_sid != old_sid
        assert world.verify.count("cancel") == (1 if cancel_answered else 2)

    async def test_checks_in_flight_count_against_the_cap_and_a_refusal_keeps_no_code(
        self, world: World
    ) -> None:
        verification_id = await pending(world)
        for _ in range(5):
            await submit(world, verification_id, "000000")
        with pytest.raises(CheckAttemptsExhausted):
            await submit(world, verification_id, "000000")
        assert len(world.stash.codes) == 5, "the refused check's code stayed in the stash"

    async def test_a_transient_error_retries_the_check(self, world: World) -> None:
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, world.verify.sent_codes[TO])
        world.verify.fail_next(ProviderTransientError("503", status=503))
        assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
        assert (await load_check(world, check_id)).status is CheckStatus.QUEUED
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.APPROVED

    async def test_a_verification_the_provider_forgot_expires(self, world: World) -> None:
        verification_id = await pending(world)
        world.verify.pending.clear()
        check_id = await submit(world, verification_id, "123456")
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.EXPIRED
        assert (await load(world, verification_id)).status is VerificationStatus.EXPIRED

    async def test_checks_need_a_pending_verification_and_a_plausible_code(
        self, world: World
    ) -> None:
        verification_id = await queued(world)
        with pytest.raises(VerificationNotPending):
            await submit(world, verification_id, "123456")
        verification_id = await pending(world, "+14155550124")
        for bad in ("12", "12345678901", "1 2", "\uff11\uff12\uff13\uff14"):
            with pytest.raises(InvalidInput):
                await submit(world, verification_id, bad)

    async def test_a_code_typed_with_a_space_or_a_dash_is_the_code(self, world: World) -> None:
        verification_id = await pending(world)
        code = world.verify.sent_codes[TO]
        check_id = await submit(world, verification_id, f"{code[:3]} {code[3:]}")
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.APPROVED


class TestALostCheckAnswer:
    """Twilio deletes a verification when a check approves it — and when it expires or is
    canceled — so a check whose answer was lost and then finds it 'not found' asks Twilio's
    record of the verification's sends (the Attempts API) whether it was approved."""

    async def test_an_approval_whose_answer_was_lost_is_recognised(self, world: World) -> None:
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, world.verify.sent_codes[TO])
        world.verify.lose_next_answer()
        assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
        world.clock.advance(1)
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.APPROVED
        assert (await load(world, verification_id)).status is VerificationStatus.APPROVED
        assert (world.verify.count("check"), world.verify.count("attempts")) == (2, 1)

    async def test_a_verification_gone_for_another_reason_is_never_approved(
        self, world: World
    ) -> None:
        """The flaw the review found: a wrong code whose answer was lost, then the verification
        canceled at Twilio (by anyone), used to be taken for an approval."""
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, wrong_for(world))
        world.verify.lose_next_answer()
        assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
        row = await load(world, verification_id)
        assert row.provider_sid is not None
        await world.verify.cancel_verification(world.verify.default_service, row.provider_sid)
        world.clock.advance(1)
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.EXPIRED
        assert (await load(world, verification_id)).status is VerificationStatus.EXPIRED
        assert world.verify.count("attempts") == 1

    async def test_while_twilios_record_cannot_be_read_the_check_waits_and_approves_nothing(
        self, world: World
    ) -> None:
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, world.verify.sent_codes[TO])
        world.verify.lose_next_answer()
        assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
        world.clock.advance(1)
        # The retry's check finds it gone; the Attempts API does not answer: still unknown.
        world.verify.fail_next(None, ProviderTransientError("attempts: 503"))
        assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
        assert (await load_check(world, check_id)).status is CheckStatus.QUEUED
        world.clock.advance(2)
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.APPROVED

    async def test_a_lost_wrong_code_is_checked_again_not_approved(self, world: World) -> None:
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, wrong_for(world))
        world.verify.lose_next_answer()
        assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
        world.clock.advance(1)
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.REJECTED
        assert (await load(world, verification_id)).status is VerificationStatus.PENDING

    async def test_near_its_expiry_a_missing_verification_is_not_taken_for_an_approval(
        self, world: World
    ) -> None:
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, wrong_for(world))
        world.verify.lose_next_answer()
        assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
        world.verify.pending.clear()  # gone at the provider: expired, as far as anyone can tell
        row = await load(world, verification_id)
        assert row.expires_at is not None
        world.clock.current = row.expires_at - timedelta(seconds=10)
        async with world.uow_factory() as uow:  # keep the check's own deadline ahead
            await uow.session.execute(
                update(VerificationCheck)
                .where(VerificationCheck.id == check_id)
                .values(deadline_at=world.clock.current + timedelta(seconds=30))
            )
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.EXPIRED
        assert (await load(world, verification_id)).status is VerificationStatus.EXPIRED

    async def test_after_six_calls_a_missing_verification_may_have_used_up_its_checks(
        self, world: World
    ) -> None:
        verification_id = await pending(world)
        check_id = await submit(world, verification_id, wrong_for(world))
        for _ in range(6):  # six calls, every answer lost: the sixth may have been a 60202
            world.verify.lose_next_answer()
            assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
            world.clock.advance(1)
        world.verify.pending.clear()
        assert await world.code_jobs.check_code(check_id) is None
        assert (await load_check(world, check_id)).status is CheckStatus.EXPIRED


class TestUnitOfWork:
    async def test_jobs_and_change_notices_go_out_only_after_the_commit(self, world: World) -> None:
        async with world.uow_factory() as uow:
            verification = await world.verifications.request(
                uow, world.key, VerificationRequest(to=TO)
            )
            uow.notify_after_commit(Change(verification.id))
            assert world.jobs.published == [] and world.changes.published == []
        assert [job.entity_id for job in world.jobs.published] == [verification.id]
        assert world.changes.published == [verification.id]

    async def test_an_exception_publishes_nothing_and_keeps_nothing(self, world: World) -> None:
        created: list[uuid.UUID] = []

        async def request_then_fail() -> None:
            async with world.uow_factory() as uow:
                verification = await world.verifications.request(
                    uow, world.key, VerificationRequest(to=TO)
                )
                created.append(verification.id)
                raise RuntimeError("on purpose")

        with pytest.raises(RuntimeError, match="on purpose"):
            await request_then_fail()
        assert world.jobs.published == [] and len(created) == 1
        verification_id = created[0]
        async with world.uow_factory() as uow:
            assert await uow.verifications.get(verification_id) is None

    async def test_a_publish_failure_leaves_the_committed_row_for_the_sweeper(
        self, world: World
    ) -> None:
        world.jobs.fail_with = PublishFailed("broker down")
        async with world.uow_factory() as uow:
            verification = await world.verifications.request(
                uow, world.key, VerificationRequest(to=TO)
            )
        async with world.uow_factory() as uow:
            row = await uow.verifications.get(verification.id)
            assert row is not None and row.status is VerificationStatus.QUEUED

    async def test_no_transaction_is_open_while_a_limit_is_consulted(self, world: World) -> None:
        """Limits live in Redis: a transaction held across them would hold a connection."""
        open_during_redis: list[bool] = []
        current: list[UnitOfWork] = []

        class Watching(FakeSendLimits):
            async def admit(self, request: SendRequest) -> None:
                open_during_redis.append(current[0].session.in_transaction())
                await super().admit(request)

        class WatchingLockout(FakeLockout):
            async def reserve(self, guesser: Guesser, attempt: str, ttl_seconds: float) -> None:
                open_during_redis.append(current[0].session.in_transaction())
                await super().reserve(guesser, attempt, ttl_seconds)

        watched = replace(
            world.verifications, guards=Guards(Watching(), WatchingLockout(), FakeActionLimit())
        )
        request = VerificationRequest(to=TO, user_id="watched")
        async with world.uow_factory() as uow:
            current[:] = [uow]
            verification = await watched.request(uow, world.key, request)
        async with world.uow_factory() as uow:  # as if the worker had sent it
            await uow.session.execute(
                update(Verification)
                .where(Verification.id == verification.id)
                .values(status=VerificationStatus.PENDING, provider_sid="VE" + "0" * 32)
            )
        for act in (
            lambda uow: watched.resend(uow, world.key, verification.id),
            lambda uow: watched.submit_check(uow, world.key, verification.id, "123456"),
        ):
            async with world.uow_factory() as uow:
                current[:] = [uow]
                await act(uow)
        assert open_during_redis == [False, False, False]


async def test_the_audit_trail_of_a_login(world: World) -> None:
    async with world.uow_factory() as uow:
        verification = await world.verifications.request(
            uow, world.key, VerificationRequest(to=TO, user_id="audited")
        )
    assert await world.code_jobs.send_code(verification.id) is None
    check_id = await submit(world, verification.id, world.verify.sent_codes[TO])
    assert await world.code_jobs.check_code(check_id) is None
    assert await events(world, "audited") == [
        EventType.VERIFICATION_REQUESTED,
        EventType.VERIFICATION_SENT,
        EventType.VERIFICATION_APPROVED,
    ]


async def test_a_refusal_after_a_lost_check_answer_keeps_the_evidence(world: World) -> None:
    """Lost approval, then a plain 503, then 'not found': still recognised as the approval."""
    verification_id = await pending(world)
    check_id = await submit(world, verification_id, world.verify.sent_codes[TO])
    world.verify.lose_next_answer()
    assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
    world.clock.advance(1)
    world.verify.fail_next(ProviderTransientError("503", status=503))
    assert isinstance(await world.code_jobs.check_code(check_id), RetryLater)
    assert (await load_check(world, check_id)).provider_call_started_at is not None
    world.clock.advance(1)
    assert await world.code_jobs.check_code(check_id) is None
    assert (await load_check(world, check_id)).status is CheckStatus.APPROVED
