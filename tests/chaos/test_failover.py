"""Redis that survives its primary: a primary, a replica and three Sentinels; the primary is
SIGKILLed in the middle of a storm of verifications. Every verification answered 202 reaches
`pending`, none is lost, no number gets two codes (the sweeper republishes the jobs the
failover lost)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster import FINAL, Cluster, cluster_numbers, cluster_on
from tests.sentinel import MASTER, SentinelGroup
from tests.support import wait_until

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


@pytest.fixture
def sentinel_cluster(chaos_database: str, tmp_path: Path) -> Iterator[Cluster]:
    group = SentinelGroup(tmp_path).start()
    with cluster_on(
        group, chaos_database, tmp_path, TWOSTEP_REDIS_SENTINEL_MASTER=MASTER
    ) as cluster:
        yield cluster


def test_killing_the_redis_primary_mid_storm_loses_nothing_and_sends_once(
    sentinel_cluster: Cluster, report: Any
) -> None:
    cluster = sentinel_cluster
    group = cluster.redis
    assert isinstance(group, SentinelGroup)
    cluster.start_sandbox({"latency_ms": 200, "jitter_ms": 50})
    cluster.start_api()
    cluster.start_beat()
    worker = cluster.start_worker()
    tag, numbers = "failover", cluster_numbers(300)
    refused: Counter[int] = Counter()
    done = threading.Event()

    def create(to: str) -> str:
        """As a login server would: the same Idempotency-Key until it is answered 202."""
        key = uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {cluster.api_key}", "Idempotency-Key": key}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                answer = httpx.post(
                    f"{cluster.api_url}/v1/verifications",
                    json={"to": to, "user_id": tag},
                    headers=headers,
                    timeout=10,
                )
            except httpx.HTTPError:
                refused[0] += 1
            else:
                if answer.status_code == 202:
                    return str(answer.json()["id"])
                refused[answer.status_code] += 1
            time.sleep(0.2)
        raise AssertionError(f"{to} was never accepted")

    def storm() -> list[str]:
        with ThreadPoolExecutor(10) as pool:
            ids = []
            for index, to in enumerate(numbers):
                ids.append(pool.submit(create, to))
                time.sleep(0.02 if index % 10 else 0.05)
            done.set()
            return [future.result() for future in ids]

    started = time.monotonic()
    with ThreadPoolExecutor(1) as runner:
        storming = runner.submit(storm)
        time.sleep(2.0)
        before = cluster.statuses(tag)
        killed_at = group.kill_primary()
        promoted_at = group.wait_for_failover()
        ids = storming.result(timeout=120)

    def settled() -> dict[str, int] | None:
        assert worker.alive(), "the worker died in the failover"
        count = sum(n for s, n in cluster.statuses(tag).items() if s in {"pending"} | FINAL)
        return {"settled": count} if count == len(ids) else None

    settle_started = time.monotonic()
    wait_until(settled, timeout=120, interval=0.5, what="every verification")
    took = time.monotonic() - settle_started
    statuses = cluster.statuses(tag)
    with cluster.sandbox() as sandbox:
        stats = sandbox.stats()
    report(
        "Redis primary SIGKILLed mid-storm, a replica promoted by Sentinel",
        verifications=len(ids),
        created_before_the_kill=sum(before.values()),
        failover_seconds=round(promoted_at - killed_at, 1),
        refused_meanwhile=dict(refused),
        statuses=dict(statuses),
        seconds_to_all_pending=round(time.monotonic() - started, 1),
        settled_after_storm_s=round(took, 1),
        worker_alive=worker.alive(),
        sends=stats["sends_total"],
        max_sends_to_one_number=stats["max_sends_to_one_destination"],
    )
    assert 0 < sum(before.values()) < len(numbers), "the kill came before or after the storm"
    assert len(set(ids)) == len(numbers) and statuses == {"pending": len(numbers)}
    assert worker.alive(), "the worker did not ride out the failover"
    assert stats["max_sends_to_one_destination"] == 1 and stats["sends_total"] == len(numbers)
