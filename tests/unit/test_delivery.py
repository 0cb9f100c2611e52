"""The worker-side use cases, against fakes: what is sent, how often, and what is recorded."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import pytest

from shared.clock import utcnow
from shared.db.models import ApiKey, Verification, VerificationCheck
from shared.db.session import UnitOfWorkFactory
from shared.domain import CheckStatus, ErrorCode, VerificationStatus
from shared.errors import (
    CheckAttemptsExhausted,
    InvalidInput,
    ProviderFinalError,
    ProviderPermanentError,
    ProviderTransientError,
    VerificationNotPending,
)
from shared.limits import Guards
from shared.services import delivery
from shared.services.delivery import DeliveryDeps, RetryLater
from shared.services.verifications import VerificationRequest, request_check, request_verification
from shared.settings import Settings
from tests.fakes import FakeCodeStash, FakeSendLimits, FakeVerifyClient, fake_guards

TO = "+14155550123"


def queued(deps: DeliveryDeps, key: ApiKey, to: str = TO) -> uuid.UUID:
    with deps.uow_factory() as uow:
        verification = request_verification(
            uow, deps.settings, guards_of(deps), key, VerificationRequest(to=to)
        )
        uow.commit()
    return verification.id


def guards_of(deps: DeliveryDeps) -> Guards:
    return Guards(sends=FakeSendLimits(), lockout=deps.lockout)


def load(deps: DeliveryDeps, verification_id: uuid.UUID) -> Verification:
    with deps.uow_factory() as uow:
        row = uow.verifications.get(verification_id)
        assert row is not None
        return row


def load_check(deps: DeliveryDeps, check_id: uuid.UUID) -> VerificationCheck:
    with deps.uow_factory() as uow:
        row = uow.checks.get(check_id)
        assert row is not None
        return row


def pending(deps: DeliveryDeps, key: ApiKey, to: str = TO) -> uuid.UUID:
    verification_id = queued(deps, key, to)
    assert delivery.send_code(deps, verification_id) is None
    assert load(deps, verification_id).status is VerificationStatus.PENDING
    return verification_id


def submit(deps: DeliveryDeps, verification_id: uuid.UUID, code: str) -> uuid.UUID:
    with deps.uow_factory() as uow:
        check = request_check(
            uow, deps.settings, guards_of(deps), deps.stash, verification_id, code
        )
        uow.commit()
    return check.id


class TestSendCode:
    def test_sends_once_and_records_the_pending_verification(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        assert delivery.send_code(deps, verification_id) is None
        row = load(deps, verification_id)
        assert row.status is VerificationStatus.PENDING
        assert row.provider_sid == verify.pending[TO].sid
        assert row.send_attempts == 1 and row.provider_attempts == 1
        assert row.claim_token is None and row.provider_call_started_at is None
        assert row.expires_at is not None
        assert row.expires_at - row.created_at == pytest.approx(
            timedelta(minutes=10), abs=timedelta(seconds=5)
        )
        assert verify.count("start") == 1

    def test_a_redelivered_job_sends_nothing_more(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        for _ in range(3):
            assert delivery.send_code(deps, verification_id) is None
        assert verify.count("start") == 1
        assert load(deps, verification_id).provider_attempts == 1

    def test_a_transient_error_commits_its_bookkeeping_and_asks_for_a_retry(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        verify.fail_next(ProviderTransientError("503", provider_code=20503, status=503))
        outcome = delivery.send_code(deps, verification_id)
        assert isinstance(outcome, RetryLater)
        assert 0.25 <= outcome.countdown <= 0.5
        row = load(deps, verification_id)
        assert row.status is VerificationStatus.QUEUED
        assert row.provider_attempts == 1
        assert (row.error_code, row.provider_error_code) == ("provider_unavailable", 20503)
        assert row.provider_call_started_at is None  # a 503 is a refusal: nothing to reconcile

        assert delivery.send_code(deps, verification_id) is None
        row = load(deps, verification_id)
        assert row.status is VerificationStatus.PENDING and row.provider_attempts == 2
        assert row.error_code is None
        assert verify.count("find") == 0 and verify.count("start") == 2

    def test_retry_after_from_the_provider_is_honoured(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        verify.fail_next(ProviderTransientError("slow down", provider_code=20429, retry_after=3.0))
        outcome = delivery.send_code(deps, verification_id)
        assert isinstance(outcome, RetryLater) and outcome.countdown >= 3.0

    def test_a_lost_answer_is_reconciled_instead_of_sending_again(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        verify.lose_next_answer()
        assert isinstance(delivery.send_code(deps, verification_id), RetryLater)
        assert load(deps, verification_id).provider_call_started_at is not None

        assert delivery.send_code(deps, verification_id) is None
        row = load(deps, verification_id)
        assert row.status is VerificationStatus.PENDING
        assert row.provider_sid == verify.pending[TO].sid
        assert len(verify.pending[TO].sends) == 1, "the user got a second SMS"
        assert (verify.count("start"), verify.count("find")) == (1, 1)

    def test_an_ambiguous_error_that_sent_nothing_sends_after_looking(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        verify.fail_next(ProviderTransientError("reset", ambiguous=True))
        assert isinstance(delivery.send_code(deps, verification_id), RetryLater)
        assert delivery.send_code(deps, verification_id) is None
        assert load(deps, verification_id).status is VerificationStatus.PENDING
        assert (verify.count("find"), verify.count("start")) == (1, 2)
        assert len(verify.pending[TO].sends) == 1

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
    def test_a_refusal_fails_the_verification_after_one_call(
        self,
        deps: DeliveryDeps,
        key: ApiKey,
        verify: FakeVerifyClient,
        error: Exception,
        reason: str,
    ) -> None:
        verification_id = queued(deps, key)
        verify.fail_next(error)  # type: ignore[arg-type]
        assert delivery.send_code(deps, verification_id) is None
        assert delivery.send_code(deps, verification_id) is None
        row = load(deps, verification_id)
        assert row.status is VerificationStatus.FAILED
        assert row.error_code == reason
        assert row.completed_at is not None
        assert verify.count("start") == 1

    def test_past_the_deadline_it_fails_without_calling(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        with deps.uow_factory() as uow:
            uow.verifications.transition(
                verification_id,
                from_statuses=[VerificationStatus.QUEUED],
                deadline_at=utcnow() - timedelta(seconds=1),
            )
            uow.commit()
        assert delivery.send_code(deps, verification_id) is None
        row = load(deps, verification_id)
        assert (row.status, row.error_code) == (VerificationStatus.FAILED, "provider_unavailable")
        assert verify.calls == []

    def test_retries_stop_at_the_deadline(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        with deps.uow_factory() as uow:
            uow.verifications.transition(
                verification_id,
                from_statuses=[VerificationStatus.QUEUED],
                deadline_at=utcnow() + timedelta(milliseconds=100),
            )
            uow.commit()
        verify.fail_next(ProviderTransientError("503", status=503))
        retry = delivery.send_code(deps, verification_id)
        assert isinstance(retry, RetryLater) and retry.countdown <= 0.1  # not past the deadline
        time.sleep(0.15)
        assert delivery.send_code(deps, verification_id) is None
        row = load(deps, verification_id)
        assert (row.status, row.error_code) == (VerificationStatus.FAILED, "provider_unavailable")
        assert row.completed_at is not None and row.completed_at >= row.deadline_at
        assert verify.count("start") == 1

    def test_a_dead_workers_claim_is_taken_over_and_reconciled(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient, unit_settings: Settings
    ) -> None:
        verification_id = queued(deps, key)
        long_ago = utcnow() - timedelta(minutes=1)
        with deps.uow_factory() as uow:
            token = uow.verifications.claim(
                verification_id, now=long_ago, until=long_ago + unit_settings.claim_lease
            )
            assert token is not None
            uow.verifications.mark_call_started(verification_id, token, long_ago)
            uow.commit()
        # The dead worker's call did reach the provider.
        verify.start_verification(TO, load(deps, verification_id).channel, None)

        assert delivery.send_code(deps, verification_id) is None
        row = load(deps, verification_id)
        assert row.status is VerificationStatus.PENDING and row.provider_attempts == 2
        assert len(verify.pending[TO].sends) == 1
        assert verify.count("find") == 1

    def test_a_live_claim_is_left_alone(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = queued(deps, key)
        now = utcnow()
        with deps.uow_factory() as uow:
            assert uow.verifications.claim(
                verification_id, now=now, until=now + timedelta(seconds=30)
            )
            uow.commit()
        assert delivery.send_code(deps, verification_id) is None
        assert verify.calls == []
        assert load(deps, verification_id).status is VerificationStatus.SENDING


class TestCheckCode:
    def test_a_wrong_code_is_rejected_and_the_verification_stays_pending(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient, stash: FakeCodeStash
    ) -> None:
        verification_id = pending(deps, key)
        wrong = "000000" if verify.sent_codes[TO] != "000000" else "111111"
        check_id = submit(deps, verification_id, wrong)
        assert delivery.check_code(deps, check_id) is None
        assert load_check(deps, check_id).status is CheckStatus.REJECTED
        row = load(deps, verification_id)
        assert (row.status, row.check_attempts) == (VerificationStatus.PENDING, 1)
        assert check_id not in stash.codes

    def test_the_right_code_approves_both(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient, stash: FakeCodeStash
    ) -> None:
        verification_id = pending(deps, key)
        check_id = submit(deps, verification_id, verify.sent_codes[TO])
        assert delivery.check_code(deps, check_id) is None
        check = load_check(deps, check_id)
        assert check.status is CheckStatus.APPROVED and check.completed_at is not None
        assert load(deps, verification_id).status is VerificationStatus.APPROVED
        assert stash.codes == {}
        assert delivery.check_code(deps, check_id) is None
        assert verify.count("check") == 1

    def test_a_lost_code_fails_the_check_and_gives_the_attempt_back(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient, stash: FakeCodeStash
    ) -> None:
        verification_id = pending(deps, key)
        check_id = submit(deps, verification_id, "123456")
        stash.codes.clear()  # Redis restarted without persistence
        assert delivery.check_code(deps, check_id) is None
        check = load_check(deps, check_id)
        assert (check.status, check.error_code) == (CheckStatus.FAILED, "code_unavailable")
        assert load(deps, verification_id).check_attempts == 0
        assert verify.count("check") == 0

    def test_five_wrong_codes_use_up_the_verification(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = pending(deps, key)
        wrong = "000000" if verify.sent_codes[TO] != "000000" else "111111"
        for _ in range(5):
            assert delivery.check_code(deps, submit(deps, verification_id, wrong)) is None
        row = load(deps, verification_id)
        assert (row.status, row.error_code) == (
            VerificationStatus.MAX_ATTEMPTS_REACHED,
            "max_check_attempts_reached",
        )
        with pytest.raises(CheckAttemptsExhausted) as sixth:
            submit(deps, verification_id, verify.sent_codes[TO])
        assert (sixth.value.code, sixth.value.limit) == (
            "max_attempts_reached",
            "checks_per_verification",
        )

    def test_checks_in_flight_count_against_the_cap(self, deps: DeliveryDeps, key: ApiKey) -> None:
        verification_id = pending(deps, key)
        for _ in range(5):
            submit(deps, verification_id, "000000")
        with pytest.raises(CheckAttemptsExhausted):
            submit(deps, verification_id, "000000")

    def test_a_transient_error_retries_the_check(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = pending(deps, key)
        check_id = submit(deps, verification_id, verify.sent_codes[TO])
        verify.fail_next(ProviderTransientError("503", status=503))
        assert isinstance(delivery.check_code(deps, check_id), RetryLater)
        assert load_check(deps, check_id).status is CheckStatus.QUEUED
        assert delivery.check_code(deps, check_id) is None
        assert load_check(deps, check_id).status is CheckStatus.APPROVED

    def test_a_verification_the_provider_forgot_expires(
        self, deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        verification_id = pending(deps, key)
        verify.pending.clear()
        check_id = submit(deps, verification_id, "123456")
        assert delivery.check_code(deps, check_id) is None
        assert load_check(deps, check_id).status is CheckStatus.EXPIRED
        assert load(deps, verification_id).status is VerificationStatus.EXPIRED

    def test_checks_need_a_pending_verification_and_a_plausible_code(
        self, deps: DeliveryDeps, key: ApiKey
    ) -> None:
        verification_id = queued(deps, key)
        with pytest.raises(VerificationNotPending):
            submit(deps, verification_id, "123456")
        verification_id = pending(deps, key, "+14155550124")
        for bad in ("12", "12345678901", "12 34", "\uff11\uff12\uff13\uff14"):
            with pytest.raises(InvalidInput):
                submit(deps, verification_id, bad)


class TestUnitOfWork:
    def test_jobs_go_out_only_after_the_commit(
        self, unit_uow_factory: UnitOfWorkFactory, unit_settings: Settings, key: ApiKey, job_queue
    ) -> None:
        with unit_uow_factory() as uow:
            verification = request_verification(
                uow, unit_settings, fake_guards(), key, VerificationRequest(to=TO)
            )
            assert job_queue.published == []
            uow.commit()
        assert [job.entity_id for job in job_queue.published] == [verification.id]

    def test_a_rollback_publishes_nothing_and_keeps_nothing(
        self, unit_uow_factory: UnitOfWorkFactory, unit_settings: Settings, key: ApiKey, job_queue
    ) -> None:
        with unit_uow_factory() as uow:
            verification = request_verification(
                uow, unit_settings, fake_guards(), key, VerificationRequest(to=TO)
            )
        assert job_queue.published == []
        with unit_uow_factory() as uow:
            assert uow.verifications.get(verification.id) is None

    def test_a_publish_failure_leaves_the_committed_row_for_the_sweeper(
        self, unit_uow_factory: UnitOfWorkFactory, unit_settings: Settings, key: ApiKey, job_queue
    ) -> None:
        from shared.jobs import PublishFailed

        job_queue.fail_with = PublishFailed("broker down")
        with unit_uow_factory() as uow:
            verification = request_verification(
                uow, unit_settings, fake_guards(), key, VerificationRequest(to=TO)
            )
            uow.commit()
        with unit_uow_factory() as uow:
            row = uow.verifications.get(verification.id)
            assert row is not None and row.status is VerificationStatus.QUEUED


def test_a_failed_look_keeps_the_reason_to_look(
    deps: DeliveryDeps, key: ApiKey, verify: FakeVerifyClient
) -> None:
    verification_id = queued(deps, key)
    verify.lose_next_answer()
    assert isinstance(delivery.send_code(deps, verification_id), RetryLater)
    verify.fail_next(ProviderTransientError("503 on the fetch", status=503))
    assert isinstance(delivery.send_code(deps, verification_id), RetryLater)
    assert load(deps, verification_id).provider_call_started_at is not None
    assert delivery.send_code(deps, verification_id) is None
    assert len(verify.pending[TO].sends) == 1
    assert (verify.count("find"), verify.count("start")) == (2, 1)
