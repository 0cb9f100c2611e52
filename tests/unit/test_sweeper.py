from __future__ import annotations

from datetime import timedelta

import pytest

from shared.kit.jobs import CHECK_CODE, SEND_CODE
from shared.operations.sweeper import Sweeper
from shared.tenants.models import ApiKey
from shared.verifications.code_jobs import CodeJobs
from shared.verifications.domain import CheckStatus, VerificationStatus
from shared.verifications.service import Verifications
from tests.fakes import FakeChangeFeed, FakeClock, FakeCodeStash, FakeJobQueue
from tests.unit.test_code_jobs import load, load_check, pending, queued, submit


@pytest.fixture
def sweeper(code_jobs: CodeJobs, clock: FakeClock, stash: FakeCodeStash) -> Sweeper:
    return Sweeper(code_jobs.uow_factory, code_jobs.settings, clock, stash)


async def test_a_row_left_queued_is_published_again_once(
    code_jobs: CodeJobs,
    verifications: Verifications,
    sweeper: Sweeper,
    key: ApiKey,
    job_queue: FakeJobQueue,
    clock: FakeClock,
) -> None:
    verification_id = await queued(code_jobs, verifications, key)
    job_queue.published.clear()
    assert (await sweeper.sweep()).republished_sends == 0

    later = clock.now() + code_jobs.settings.requeue_after + timedelta(seconds=1)
    report = await sweeper.sweep(now=later)
    assert report.republished_sends == 1
    assert [(job.name, job.entity_id) for job in job_queue.published] == [
        (SEND_CODE, verification_id)
    ]
    # A second sweeper at the same moment finds nothing left to take.
    assert (await sweeper.sweep(now=later)).republished_sends == 0
    assert (await load(code_jobs, verification_id)).enqueue_count == 2


async def test_republishing_backs_off(
    code_jobs: CodeJobs, verifications: Verifications, sweeper: Sweeper, key: ApiKey
) -> None:
    verification_id = await queued(code_jobs, verifications, key)
    looks = []
    for _ in range(4):
        now = (await load(code_jobs, verification_id)).next_attempt_at + timedelta(seconds=1)
        assert (await sweeper.sweep(now=now)).republished_sends == 1
        looks.append((await load(code_jobs, verification_id)).next_attempt_at - now)
    base = code_jobs.settings.requeue_after
    assert looks == [base, 2 * base, 4 * base, 8 * base]


async def test_a_dead_claim_is_published_again_but_a_live_one_is_not(
    code_jobs: CodeJobs,
    verifications: Verifications,
    sweeper: Sweeper,
    key: ApiKey,
    job_queue: FakeJobQueue,
    clock: FakeClock,
) -> None:
    verification_id = await queued(code_jobs, verifications, key)
    now = clock.now()
    async with code_jobs.uow_factory() as uow:
        assert await uow.verifications.claim(
            verification_id, now=now, until=now + timedelta(seconds=30)
        )
    job_queue.published.clear()
    assert (await sweeper.sweep(now=now + timedelta(seconds=20))).republished_sends == 0
    assert (await sweeper.sweep(now=now + timedelta(seconds=31))).republished_sends == 1


async def test_rows_past_their_deadline_fail_and_pending_ones_expire_and_waiters_hear_it(
    code_jobs: CodeJobs,
    verifications: Verifications,
    sweeper: Sweeper,
    key: ApiKey,
    clock: FakeClock,
    changes: FakeChangeFeed,
    stash: FakeCodeStash,
) -> None:
    stuck = await queued(code_jobs, verifications, key, "+14155550124")
    live = await pending(code_jobs, verifications, key)
    check_id = await submit(code_jobs, verifications, live, "123456")
    assert check_id in stash.codes
    changes.published.clear()
    clock.advance(11 * 60)
    report = await sweeper.sweep()
    assert (report.failed_sends, report.failed_checks, report.expired) == (1, 1, 1)
    row = await load(code_jobs, stuck)
    assert (row.status, row.error_code) == (VerificationStatus.FAILED, "provider_unavailable")
    assert (await load(code_jobs, live)).status is VerificationStatus.EXPIRED
    assert (await load_check(code_jobs, check_id)).status is CheckStatus.FAILED
    assert check_id not in stash.codes, "a check the sweeper ended keeps no code in Redis"
    assert set(changes.published) == {stuck, live, check_id}
    # A late job finds nothing to do.
    assert await code_jobs.send_code(stuck) is None
    assert (await load(code_jobs, stuck)).status is VerificationStatus.FAILED


async def test_lost_check_jobs_are_published_again(
    code_jobs: CodeJobs,
    verifications: Verifications,
    sweeper: Sweeper,
    key: ApiKey,
    job_queue: FakeJobQueue,
    clock: FakeClock,
) -> None:
    verification_id = await pending(code_jobs, verifications, key)
    check_id = await submit(code_jobs, verifications, verification_id, "123456")
    job_queue.published.clear()
    clock.advance(code_jobs.settings.requeue_after_seconds + 1)
    await sweeper.sweep()
    assert [(job.name, job.entity_id) for job in job_queue.published] == [(CHECK_CODE, check_id)]
