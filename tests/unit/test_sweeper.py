from __future__ import annotations

from datetime import timedelta

from shared.clock import utcnow
from shared.domain import CheckStatus, VerificationStatus
from shared.jobs import CHECK_CODE, SEND_CODE
from shared.services import delivery
from shared.services.delivery import DeliveryDeps
from shared.services.sweeper import sweep
from tests.fakes import FakeJobQueue
from tests.unit.test_delivery import load, load_check, pending, queued, submit


def test_a_row_left_queued_is_published_again_once(
    deps: DeliveryDeps, key, job_queue: FakeJobQueue
) -> None:
    verification_id = queued(deps, key)
    job_queue.published.clear()
    assert sweep(deps.uow_factory, deps.settings).republished_sends == 0

    later = utcnow() + deps.settings.requeue_after + timedelta(seconds=1)
    report = sweep(deps.uow_factory, deps.settings, now=later)
    assert report.republished_sends == 1
    assert [(job.name, job.entity_id) for job in job_queue.published] == [
        (SEND_CODE, verification_id)
    ]
    # A second sweeper at the same moment finds nothing left to take.
    assert sweep(deps.uow_factory, deps.settings, now=later).republished_sends == 0
    assert load(deps, verification_id).enqueue_count == 2


def test_republishing_backs_off(deps: DeliveryDeps, key, job_queue: FakeJobQueue) -> None:
    verification_id = queued(deps, key)
    looks = []
    for _ in range(4):
        now = load(deps, verification_id).next_attempt_at + timedelta(seconds=1)
        assert sweep(deps.uow_factory, deps.settings, now=now).republished_sends == 1
        looks.append(load(deps, verification_id).next_attempt_at - now)
    base = deps.settings.requeue_after
    assert looks == [base, 2 * base, 4 * base, 8 * base]


def test_a_dead_claim_is_published_again_but_a_live_one_is_not(
    deps: DeliveryDeps, key, job_queue
) -> None:
    verification_id = queued(deps, key)
    now = utcnow()
    with deps.uow_factory() as uow:
        assert uow.verifications.claim(verification_id, now=now, until=now + timedelta(seconds=30))
        uow.commit()
    job_queue.published.clear()
    assert (
        sweep(deps.uow_factory, deps.settings, now=now + timedelta(seconds=20)).republished_sends
        == 0
    )
    assert (
        sweep(deps.uow_factory, deps.settings, now=now + timedelta(seconds=31)).republished_sends
        == 1
    )


def test_rows_past_their_deadline_fail_and_pending_ones_expire(deps: DeliveryDeps, key) -> None:
    stuck = queued(deps, key, "+14155550124")
    live = pending(deps, key)
    check_id = submit(deps, live, "123456")
    later = utcnow() + timedelta(minutes=11)
    report = sweep(deps.uow_factory, deps.settings, now=later)
    assert (report.failed_sends, report.failed_checks, report.expired) == (1, 1, 1)
    row = load(deps, stuck)
    assert (row.status, row.error_code) == (VerificationStatus.FAILED, "provider_unavailable")
    assert load(deps, live).status is VerificationStatus.EXPIRED
    assert load_check(deps, check_id).status is CheckStatus.FAILED
    # A late job finds nothing to do.
    assert delivery.send_code(deps, stuck) is None
    assert load(deps, stuck).status is VerificationStatus.FAILED


def test_lost_check_jobs_are_published_again(
    deps: DeliveryDeps, key, job_queue: FakeJobQueue
) -> None:
    check_id = submit(deps, pending(deps, key), "123456")
    job_queue.published.clear()
    sweep(
        deps.uow_factory,
        deps.settings,
        now=utcnow() + deps.settings.requeue_after + timedelta(seconds=1),
    )
    assert [(job.name, job.entity_id) for job in job_queue.published] == [(CHECK_CODE, check_id)]
