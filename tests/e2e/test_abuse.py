"""Abuse protection with real processes: limits shared across processes, the lockout, the
fleet-wide throttle, and what happens when Redis goes away."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.cluster import Cluster, cluster_numbers
from tests.support import free_port, random_phone, wait_until


def auth(cluster: Cluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.api_key}"}


def post(
    cluster: Cluster, path: str, body: dict[str, Any], api_url: str | None = None
) -> httpx.Response:
    return httpx.post(
        f"{api_url or cluster.api_url}{path}", json=body, headers=auth(cluster), timeout=30
    )


def get(cluster: Cluster, path: str) -> dict[str, Any]:
    response = httpx.get(f"{cluster.api_url}{path}", headers=auth(cluster), timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_status(cluster: Cluster, verification_id: str, wanted: str, timeout: float = 15) -> None:
    wait_until(
        lambda: get(cluster, f"/v1/verifications/{verification_id}")["status"] == wanted,
        timeout=timeout,
        what=f"verification {wanted}",
    )


def checked(cluster: Cluster, verification_id: str, code: str) -> httpx.Response:
    response = post(cluster, f"/v1/verifications/{verification_id}/checks", {"code": code})
    if response.status_code == 202:
        path = f"/v1/verifications/{verification_id}/checks/{response.json()['id']}"
        wait_until(lambda: get(cluster, path)["status"] != "queued", timeout=15, what="the check")
    return response


@pytest.mark.slow
def test_two_api_processes_share_one_count_and_the_sixth_send_is_refused(
    cluster: Cluster, report: Any
) -> None:
    cluster.start_sandbox()
    first = cluster.start_api()
    second = cluster.start_api("api-2", free_port())
    cluster.start_worker()
    to = random_phone()
    answers = [post(cluster, "/v1/verifications", {"to": to}, api) for api in (first, second) * 3]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [202] * 5 + [429], statuses
    refused = answers[-1].json()
    assert (refused["code"], refused["limit"]) == ("rate_limited", "per_destination")
    assert 0 < int(answers[-1].headers["retry-after"]) <= 600
    # Twilio holds one verification per number: the newest of the five is the one sent last,
    # and each earlier one is superseded (sent and then canceled, or never sent at all).
    *earlier, newest = [answer.json()["id"] for answer in answers[:5]]
    wait_status(cluster, newest, "pending")
    for verification_id in earlier:
        ended = get(cluster, f"/v1/verifications/{verification_id}")
        assert (ended["status"], ended["error"]["code"]) == ("canceled", "superseded"), ended
    with cluster.sandbox() as sandbox:
        sends = sandbox.sends_to(to)
    report("the sixth send to one number, through two API processes", statuses=statuses,
           sandbox_sends=sends, retry_after=answers[-1].headers["retry-after"])  # fmt: skip
    assert 1 <= sends <= 5


@pytest.mark.slow
def test_two_workers_stay_under_the_provider_rate(cluster: Cluster, report: Any) -> None:
    cluster.env.update(TWOSTEP_PROVIDER_RATE="20", TWOSTEP_PROVIDER_BURST="5")
    cluster.start_sandbox()
    cluster.start_api()
    tag = "throttle"
    total = cluster.scaled(600)
    ids = cluster.create(cluster_numbers(total), tag)  # queued at once, no worker running yet
    started = time.monotonic()
    cluster.start_beat()
    cluster.start_worker()
    cluster.start_worker()
    cluster.wait_settled(tag, len(ids), timeout=120, settled={"pending"})
    took = time.monotonic() - started
    with cluster.sandbox() as sandbox:
        stats = sandbox.stats()
    report(
        f"{total} queued, two workers, provider rate 20/s burst 5",
        pending=cluster.statuses(tag)["pending"],
        seconds=round(took, 1),
        achieved_rate=round(stats["requests_total"] / took, 1),
        busiest_second=stats["peak_requests_per_second"],
        provider_requests=stats["requests_total"],
    )
    assert stats["peak_requests_per_second"] <= 20 * 1.1 + 5
    assert cluster.statuses(tag) == {"pending": total}


@pytest.mark.slow
def test_wrong_codes_exhaust_a_verification_and_lock_the_user_out_for_longer_each_time(
    cluster: Cluster, report: Any
) -> None:
    cluster.env.update(
        TWOSTEP_LOCKOUT_FAILURES="5",
        TWOSTEP_LOCKOUT_WAIT_INCREMENT_SECONDS="2",
        TWOSTEP_LOCKOUT_MAX_WAIT_SECONDS="30",
    )
    cluster.start_sandbox()
    cluster.start_api()
    cluster.start_worker()
    user = "lockout-user"

    def verification() -> tuple[str, str]:
        to = random_phone()
        created = post(cluster, "/v1/verifications", {"to": to, "user_id": user})
        assert created.status_code == 202
        wait_status(cluster, created.json()["id"], "pending")
        with cluster.sandbox() as sandbox:
            return created.json()["id"], sandbox.latest_code(to)

    def refused_before_sending() -> httpx.Response:
        """A locked user's new verification: refused before any code goes out."""
        refused = post(cluster, "/v1/verifications", {"to": random_phone(), "user_id": user})
        assert (refused.status_code, refused.json()["code"]) == (429, "user_locked")
        return refused

    first, code = verification()
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        assert checked(cluster, first, wrong).status_code == 202
    sixth = checked(cluster, first, wrong)
    assert (sixth.status_code, sixth.json()["code"]) == (429, "max_attempts_reached")
    assert get(cluster, f"/v1/verifications/{first}")["status"] == "max_attempts_reached"

    locked = refused_before_sending()
    first_wait = int(locked.headers["retry-after"])
    time.sleep(first_wait + 0.2)
    second, code = verification()
    for _ in range(5):
        assert checked(cluster, second, wrong).status_code == 202
    locked_again = refused_before_sending()
    second_wait = int(locked_again.headers["retry-after"])
    time.sleep(second_wait + 0.2)
    third, code = verification()
    assert checked(cluster, third, code).status_code == 202
    assert get(cluster, f"/v1/verifications/{third}")["status"] == "approved"
    trail = get(cluster, f"/v1/users/{user}/events?limit=200")["events"]
    locks = [event["detail"]["seconds"] for event in trail if event["type"] == "user.locked"]
    assert sorted(locks) == [2.0, 4.0]
    report("lockout", first_retry_after=first_wait, second_retry_after=second_wait)
    assert 1 <= first_wait <= 2 < second_wait <= 4


@pytest.mark.slow
def test_without_redis_sends_and_checks_answer_503_and_nothing_answered_202_is_lost(
    cluster: Cluster, report: Any
) -> None:
    cluster.start_sandbox()
    cluster.start_api()
    cluster.start_beat()
    worker = cluster.start_worker()
    pending_id = post(cluster, "/v1/verifications", {"to": random_phone()}).json()["id"]
    wait_status(cluster, pending_id, "pending")
    # No worker while Redis goes: every job published from here on is lost with it, for sure.
    worker.stop()
    tag = "redis-down"
    accepted = [
        post(cluster, "/v1/verifications", {"to": random_phone(), "user_id": tag})
        for _ in range(40)
    ]
    assert all(answer.status_code == 202 for answer in accepted)
    assert cluster.statuses(tag) == {"queued": 40}
    cluster.redis.stop()  # the 40 jobs are gone with it

    down = [
        post(cluster, "/v1/verifications", {"to": random_phone()}),
        post(cluster, f"/v1/verifications/{pending_id}/checks", {"code": "123456"}),
        post(cluster, f"/v1/verifications/{pending_id}/resend", {}),
    ]
    readiness = httpx.get(f"{cluster.api_url}/readyz", timeout=30)
    assert [answer.status_code for answer in down] == [503, 503, 503]
    assert all(answer.json()["code"] == "service_unavailable" for answer in down)
    assert all(int(answer.headers["retry-after"]) > 0 for answer in down)
    assert readiness.status_code == 503 and "redis" in readiness.json()["detail"]
    assert get(cluster, f"/v1/verifications/{pending_id}")["status"] == "pending"

    cluster.redis.start()
    wait_until(lambda: httpx.get(f"{cluster.api_url}/readyz").status_code == 200, timeout=30,
               what="ready again")  # fmt: skip
    cluster.start_worker()
    started = time.monotonic()
    for answer in accepted:
        wait_status(cluster, answer.json()["id"], "pending", timeout=60)
    assert post(cluster, "/v1/verifications", {"to": random_phone()}).status_code == 202
    report(
        "Redis stopped and restarted",
        answered_202_before=len(accepted),
        jobs_lost_with_redis=len(accepted),
        while_down=[answer.status_code for answer in down],
        readyz_while_down=readiness.status_code,
        all_pending_after_restart_s=round(time.monotonic() - started, 1),
    )


@pytest.mark.slow
def test_a_country_off_the_allow_list_costs_no_provider_call(cluster: Cluster) -> None:
    cluster.env["TWOSTEP_ALLOWED_COUNTRIES"] = "GB,IE"
    cluster.start_sandbox()
    cluster.start_api()
    cluster.start_worker()
    refused = post(cluster, "/v1/verifications", {"to": random_phone()})
    assert (refused.status_code, refused.json()["code"]) == (403, "country_not_allowed")
    british = post(cluster, "/v1/verifications", {"to": "+442079460958"})
    assert british.status_code == 202
    wait_status(cluster, british.json()["id"], "pending")
    with cluster.sandbox() as sandbox:
        stats = sandbox.stats()
    # Besides the one send, only the worker's look at its Verify service as it started.
    assert {k: v for k, v in stats["requests_by_endpoint"].items() if k != "FetchService"} == {
        "CreateVerification": 1
    }
    assert stats["sends_by_to"] == {"+442079460958": 1}
