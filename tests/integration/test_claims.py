"""Claims are compare-and-set updates: under contention exactly one worker wins."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

from shared.clock import utcnow
from shared.db.session import UnitOfWorkFactory
from shared.domain import VerificationStatus
from shared.services.keys import create_api_key
from shared.services.verifications import VerificationRequest, request_verification
from shared.settings import Settings
from tests.fakes import fake_guards
from tests.support import random_phone


def test_only_one_of_many_concurrent_claims_wins(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    with uow_factory() as uow:
        key, _ = create_api_key(uow, f"claims-{uuid.uuid4().hex[:8]}")
        verification = request_verification(
            uow, settings, fake_guards(), key, VerificationRequest(to=random_phone())
        )
        uow.commit()

    barrier = threading.Barrier(8)
    tokens: list[uuid.UUID | None] = []

    def claim() -> None:
        barrier.wait()
        now = utcnow()
        with uow_factory() as uow:
            token = uow.verifications.claim(
                verification.id, now=now, until=now + timedelta(seconds=30)
            )
            uow.commit()
        tokens.append(token)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [token for token in tokens if token is not None]
    assert len(tokens) == 8 and len(winners) == 1

    with uow_factory() as uow:
        row = uow.verifications.get(verification.id)
        assert row is not None
        assert row.status is VerificationStatus.SENDING and row.claim_token == winners[0]
        assert row.provider_attempts == 1
        # Only the winner may settle it.
        assert not uow.verifications.settle(
            verification.id, uuid.uuid4(), status=VerificationStatus.FAILED
        )
        assert uow.verifications.settle(
            verification.id, winners[0], status=VerificationStatus.PENDING
        )
        uow.commit()


def test_two_sweepers_at_once_publish_each_lost_job_once(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    from shared.services.sweeper import sweep
    from tests.fakes import FakeJobQueue

    with uow_factory() as uow:
        key, _ = create_api_key(uow, f"sweep-{uuid.uuid4().hex[:8]}")
        ids = {
            request_verification(
                uow, settings, fake_guards(), key, VerificationRequest(to=random_phone())
            ).id
            for _ in range(40)
        }
        uow.commit()
    later = utcnow() + settings.requeue_after + timedelta(seconds=1)
    queues = [FakeJobQueue(), FakeJobQueue()]
    barrier = threading.Barrier(2)

    def run(queue: FakeJobQueue) -> None:
        factory = UnitOfWorkFactory(uow_factory.session_factory, queue)
        barrier.wait()
        sweep(factory, settings, now=later)

    threads = [threading.Thread(target=run, args=(queue,)) for queue in queues]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    published = [job.entity_id for queue in queues for job in queue.published]
    mine = [entity_id for entity_id in published if entity_id in ids]
    assert sorted(mine) == sorted(ids), "a lost job was published twice, or not at all"
