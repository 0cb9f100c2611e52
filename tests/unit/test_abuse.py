"""Re-sends, cancels, the throttle and the lockout, against fakes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from shared.db.models import ApiKey, Event
from shared.domain import Channel, CheckStatus, VerificationStatus
from shared.errors import (
    CountryNotAllowed,
    ProviderPermanentError,
    UserLocked,
    VerificationNotPending,
)
from shared.limits import Guards
from shared.services import delivery
from shared.services.delivery import DeliveryDeps, RetryLater
from shared.services.verifications import (
    VerificationRequest,
    cancel_verification,
    request_check,
    request_resend,
    request_verification,
)
from shared.settings import Settings
from tests.fakes import FakeJobQueue, FakeLockout, FakeSendLimits, FakeThrottle, FakeVerifyClient
from tests.unit.test_delivery import TO, load, load_check, pending, queued


def resend(deps: DeliveryDeps, key: ApiKey, verification_id, channel=None):
    with deps.uow_factory() as uow:
        verification = request_resend(
            uow,
            deps.settings,
            Guards(FakeSendLimits(), deps.lockout),
            key,
            verification_id,
            channel,
        )
        uow.commit()
    return verification


class TestResend:
    def test_the_same_code_again_by_call_while_staying_pending(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient, job_queue: FakeJobQueue
    ) -> None:
        verification_id = pending(deps, key)
        first_sid = load(deps, verification_id).provider_sid
        job_queue.published.clear()
        waiting = resend(deps, key, verification_id, Channel.CALL)
        assert (waiting.status, waiting.resend_channel) == (
            VerificationStatus.PENDING,
            Channel.CALL,
        )
        assert [job.entity_id for job in job_queue.published] == [verification_id]
        assert resend(deps, key, verification_id).resend_channel is Channel.CALL
        assert len(job_queue.published) == 1, "a waiting re-send was doubled"

        assert delivery.send_code(deps, verification_id) is None
        row = load(deps, verification_id)
        assert (row.status, row.channel, row.resend_channel) == (
            VerificationStatus.PENDING,
            Channel.CALL,
            None,
        )
        assert row.send_attempts == 2 and row.provider_sid == first_sid
        assert len(verify.pending[TO].sends) == 2

    def test_a_failed_resend_keeps_the_first_code_usable(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = pending(deps, key)
        resend(deps, key, verification_id)
        verify.fail_next(ProviderPermanentError("blocked", provider_code=60410))
        assert delivery.send_code(deps, verification_id) is None
        row = load(deps, verification_id)
        assert (row.status, row.resend_channel, row.send_attempts) == (
            VerificationStatus.PENDING,
            None,
            1,
        )

    def test_only_a_pending_verification_can_be_sent_again(
        self, deps: DeliveryDeps, key: ApiKey
    ) -> None:
        with pytest.raises(VerificationNotPending):
            resend(deps, key, queued(deps, key, "+14155550124"))

    def test_checks_go_on_during_a_resend(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = pending(deps, key)
        resend(deps, key, verification_id)
        with deps.uow_factory() as uow:
            check = request_check(
                uow,
                deps.settings,
                Guards(FakeSendLimits(), deps.lockout),
                deps.stash,
                verification_id,
                verify.sent_codes[TO],
            )
            uow.commit()
        assert delivery.check_code(deps, check.id) is None
        assert load_check(deps, check.id).status is CheckStatus.APPROVED
        # The re-send that was waiting finds the verification over and sends nothing.
        assert delivery.send_code(deps, verification_id) is None
        assert load(deps, verification_id).status is VerificationStatus.APPROVED
        assert verify.count("start") == 1


class TestCancel:
    def test_a_cancel_ends_it_and_a_late_send_outcome_is_dropped(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        with deps.uow_factory() as uow:
            canceled = cancel_verification(uow, key, verification_id)
            uow.commit()
        assert canceled.status is VerificationStatus.CANCELED
        assert delivery.send_code(deps, verification_id) is None
        assert load(deps, verification_id).status is VerificationStatus.CANCELED
        assert verify.calls == []
        with deps.uow_factory() as uow:
            assert (
                cancel_verification(uow, key, verification_id).status is VerificationStatus.CANCELED
            )

    def test_an_approved_verification_cannot_be_canceled(
        self, deps: DeliveryDeps, key: ApiKey
    ) -> None:
        verification_id = pending(deps, key)
        with deps.uow_factory() as uow:
            uow.verifications.transition(
                verification_id,
                from_statuses=[VerificationStatus.PENDING],
                status=VerificationStatus.APPROVED,
            )
            uow.commit()
        with deps.uow_factory() as uow, pytest.raises(VerificationNotPending):
            cancel_verification(uow, key, verification_id)


class TestThrottle:
    def test_a_short_wait_is_waited_out_in_the_task(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient, throttle: FakeThrottle
    ) -> None:
        throttle.waits.extend([0.05, 0.05])
        assert delivery.send_code(deps, queued(deps, key)) is None
        assert verify.count("start") == 1 and throttle.reserved == 3

    def test_a_long_wait_requeues_without_spending_an_attempt(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient, throttle: FakeThrottle
    ) -> None:
        verification_id = queued(deps, key)
        throttle.waits.append(60.0)
        outcome = delivery.send_code(deps, verification_id)
        assert isinstance(outcome, RetryLater) and outcome.countdown == 60.0
        row = load(deps, verification_id)
        assert (row.status, row.provider_attempts, row.provider_call_started_at) == (
            VerificationStatus.QUEUED,
            0,
            None,
        )
        assert verify.calls == []


class TestLockout:
    def test_wrong_codes_count_and_a_right_one_resets(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient, guards: Guards
    ) -> None:
        lockout = guards.lockout
        assert isinstance(lockout, FakeLockout)
        with deps.uow_factory() as uow:
            verification = request_verification(
                uow, deps.settings, guards, key, VerificationRequest(to=TO, user_id="user-7")
            )
            uow.commit()
        delivery.send_code(deps, verification.id)

        def check(code: str) -> None:
            with deps.uow_factory() as uow:
                created = request_check(
                    uow, deps.settings, guards, deps.stash, verification.id, code
                )
                uow.commit()
            delivery.check_code(deps, created.id)

        wrong = "000000" if verify.sent_codes[TO] != "000000" else "111111"
        check(wrong)
        check(wrong)
        assert lockout.failures == {"user-7": 2}
        check(verify.sent_codes[TO])
        assert lockout.failures == {}

    def test_a_locked_user_cannot_check(
        self, deps: DeliveryDeps, key: ApiKey, guards: Guards
    ) -> None:
        with deps.uow_factory() as uow:
            verification = request_verification(
                uow, deps.settings, guards, key, VerificationRequest(to=TO, user_id="user-8")
            )
            uow.commit()
        delivery.send_code(deps, verification.id)
        assert isinstance(guards.lockout, FakeLockout)
        guards.lockout.locked.add("user-8")
        with deps.uow_factory() as uow, pytest.raises(UserLocked):
            request_check(uow, deps.settings, guards, deps.stash, verification.id, "123456")
        assert load(deps, verification.id).check_attempts == 0


def test_countries_off_the_allow_list_are_refused_before_anything(
    deps: DeliveryDeps, key: ApiKey, job_queue: FakeJobQueue, unit_settings: Settings
) -> None:
    settings = unit_settings.model_copy(update={"allowed_countries": frozenset({"GB", "IE"})})
    sends = FakeSendLimits()
    with deps.uow_factory() as uow:
        with pytest.raises(CountryNotAllowed, match="US"):
            request_verification(
                uow, settings, Guards(sends, FakeLockout()), key, VerificationRequest(to=TO)
            )
        assert not uow.session.new
    assert sends.admitted == [] and job_queue.published == []


def test_a_failed_resend_is_in_the_trail_as_such(
    deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
) -> None:
    from shared.domain import EventType

    verification_id = pending(deps, key)
    resend(deps, key, verification_id)
    verify.fail_next(ProviderPermanentError("blocked", provider_code=60410))
    delivery.send_code(deps, verification_id)
    with deps.uow_factory() as uow:
        events = uow.session.scalars(
            select(Event).where(Event.verification_id == verification_id).order_by(Event.id)
        ).all()
    assert [event.type for event in events] == [
        EventType.VERIFICATION_REQUESTED,
        EventType.VERIFICATION_SENT,
        EventType.VERIFICATION_RESEND_REQUESTED,
        EventType.VERIFICATION_RESEND_FAILED,
    ]
