from __future__ import annotations

from datetime import timedelta

from shared.kit.jobs import CHECK_CODE, SEND_CODE
from shared.verifications.domain import CheckStatus, VerificationStatus
from tests.unit.test_code_jobs import load, load_check, pending, queued, submit
from tests.unit.world import World


async def test_a_row_left_queued_is_published_again_once(world: World) -> None:
    verification_id = await queued(world)
    world.jobs.published.clear()
    assert (await world.sweeper.sweep()).republished_sends == 0

    later = world.clock.now() + world.settings.requeue_after + timedelta(seconds=1)
    report = await world.sweeper.sweep(now=later)
    assert report.republished_sends == 1
    assert [(job.name, job.entity_id) for job in world.jobs.published] == [
        (SEND_CODE, verification_id)
    ]
    # A second sweeper at the same moment finds nothing left to take.
    assert (await world.sweeper.sweep(now=later)).republished_sends == 0
    assert (await load(world, verification_id)).enqueue_count == 2


async def test_republishing_backs_off(world: World) -> None:
    verification_id = await queued(world)
    looks = []
    for _ in range(4):
        now = (await load(world, verification_id)).next_attempt_at + timedelta(seconds=1)
        assert (await world.sweeper.sweep(now=now)).republished_sends == 1
        looks.append((await load(world, verification_id)).next_attempt_at - now)
    base = world.settings.requeue_after
    assert looks == [base, 2 * base, 4 * base, 8 * base]


async def test_a_dead_claim_is_published_again_but_a_live_one_is_not(world: World) -> None:
    verification_id = await queued(world)
    now = world.clock.now()
    async with world.uow_factory() as uow:
        assert await uow.verifications.claim(
            verification_id, now=now, until=now + timedelta(seconds=30)
        )
    world.jobs.published.clear()
    assert (await world.sweeper.sweep(now=now + timedelta(seconds=20))).republished_sends == 0
    assert (await world.sweeper.sweep(now=now + timedelta(seconds=31))).republished_sends == 1


async def test_rows_past_their_deadline_fail_and_pending_ones_expire_and_waiters_hear_it(
    world: World,
) -> None:
    stuck = await queued(world, "+14155550124")
    live = await pending(world)
    check_id = await submit(world, live, "123456")
    assert check_id in world.stash.codes
    world.changes.published.clear()
    world.clock.advance(11 * 60)
    report = await world.sweeper.sweep()
    assert (report.failed_sends, report.failed_checks, report.expired) == (1, 1, 1)
    row = await load(world, stuck)
    assert (row.status, row.error_code) == (VerificationStatus.FAILED, "provider_unavailable")
    assert (await load(world, live)).status is VerificationStatus.EXPIRED
    assert (await load_check(world, check_id)).status is CheckStatus.FAILED
    assert check_id not in world.stash.codes, "a check the sweeper ended keeps no code in Redis"
    assert set(world.changes.published) == {stuck, live, check_id}
    # A late job finds nothing to do.
    assert await world.code_jobs.send_code(stuck) is None
    assert (await load(world, stuck)).status is VerificationStatus.FAILED


async def test_lost_check_jobs_are_published_again(world: World) -> None:
    verification_id = await pending(world)
    check_id = await submit(world, verification_id, "123456")
    world.jobs.published.clear()
    world.clock.advance(world.settings.requeue_after_seconds + 1)
    await world.sweeper.sweep()
    assert [(job.name, job.entity_id) for job in world.jobs.published] == [(CHECK_CODE, check_id)]
