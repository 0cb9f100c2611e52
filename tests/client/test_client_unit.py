"""The client's own rules, against scripted answers (httpx.MockTransport): which problem becomes
which exception, what is tried again and with which key, how a long wait is split, and that the
sync client is still what unasync makes of the async one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from twostep_client import (
    AsyncTwostepClient,
    CountryNotAllowed,
    MaxAttemptsReached,
    NoVerifiedFactor,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TwostepClient,
    TwostepConnectionError,
    UserLocked,
    VerificationNotPending,
    webhooks,
)
from twostep_client.errors import ApiError, Conflict, InvalidRequest

from shared.signatures import sign

REPO = Path(__file__).resolve().parents[2]
VERIFICATION_ID = "6f1c2b9e-6a4e-4a8e-9d55-0b8e6f1c2b9e"
CHECK_ID = "0a0b0c0d-0000-4000-8000-000000000001"
VERIFICATION: dict[str, Any] = {
    "id": VERIFICATION_ID,
    "status": "queued",
    "channel": "sms",
    "to": "+1415•••••23",
    "purpose": "standalone",
    "user_id": "42",
    "send_attempts": 0,
    "check_attempts": 0,
    "created_at": "2026-12-05T06:00:00Z",
    "updated_at": "2026-12-05T06:00:00Z",
    "expires_at": None,
    "error": None,
}
CHECK: dict[str, Any] = {
    "id": CHECK_ID,
    "verification_id": VERIFICATION_ID,
    "status": "queued",
    "created_at": "2026-12-05T06:00:01Z",
    "completed_at": None,
    "error": None,
}


def problem(status: int, code: str, **extra: Any) -> httpx.Response:
    body = {"type": "t", "title": "x", "status": status, "detail": f"said {code}", "code": code}
    headers = {"Retry-After": str(extra.pop("retry_after"))} if "retry_after" in extra else {}
    return httpx.Response(
        status, json={**body, **extra}, headers={**headers, "X-Request-Id": "rid-1"}
    )


class Script:
    """Answers requests in order and keeps them."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **options: Any) -> TwostepClient:
        return TwostepClient(
            "http://twostep.test/", "tsk_key", transport=httpx.MockTransport(self), **options
        )


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr("twostep_client._sync.client.time.sleep", slept.append)
    return slept


@pytest.mark.parametrize(
    ("answer", "error", "fields"),
    [
        (problem(409, "no_verified_factor"), NoVerifiedFactor, {}),
        (problem(409, "verification_not_pending"), VerificationNotPending, {}),
        (problem(409, "something_new"), Conflict, {"code": "something_new"}),
        (problem(403, "country_not_allowed"), CountryNotAllowed, {}),
        (
            problem(429, "rate_limited", limit="resend_cooldown", retry_after=17),
            RateLimited,
            {"limit": "resend_cooldown", "retry_after": 17.0},
        ),
        (problem(429, "user_locked", limit="user_lockout", retry_after=60), UserLocked, {}),
        (problem(429, "max_attempts_reached", retry_after=600), MaxAttemptsReached, {}),
        (problem(422, "invalid_request", errors=[]), InvalidRequest, {"request_id": "rid-1"}),
        (httpx.Response(502, text="<html>bad gateway</html>"), ServerError, {"status": 502}),
    ],
)
def test_each_problem_is_its_own_exception(
    answer: httpx.Response, error: type[ApiError], fields: dict[str, Any]
) -> None:
    script = Script(answer)
    with pytest.raises(error) as raised, script.client() as client:
        client.start_challenge("42")
    for name, value in fields.items():
        assert getattr(raised.value, name) == value
    assert len(script.requests) == 1  # none of these is tried again


def test_a_keyed_post_is_tried_again_with_the_same_key_after_a_lost_answer(
    slept: list[float],
) -> None:
    script = Script(
        httpx.ReadTimeout("lost"),
        problem(503, "service_unavailable", retry_after=1),
        httpx.Response(202, json=VERIFICATION),
    )
    with script.client() as client:
        verification = client.start_verification("+14155550123", user_id="42")
    assert verification.status == "queued" and verification.in_flight
    keys = {request.headers["Idempotency-Key"] for request in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1
    assert json.loads(script.requests[0].content) == {
        "to": "+14155550123",
        "channel": "sms",
        "user_id": "42",
    }
    assert len(slept) == 2 and slept[1] == 1.0  # Retry-After, within the cap


def test_a_write_the_api_does_not_key_is_not_repeated_after_a_lost_answer() -> None:
    script = Script(httpx.ReadTimeout("lost"))
    with pytest.raises(TwostepConnectionError), script.client() as client:
        client.resend(VERIFICATION_ID, channel="call")
    assert len(script.requests) == 1


def test_a_connection_never_made_is_tried_again_for_any_call() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(201, json={"codes": ["A"] * 10}))
    with script.client() as client:
        assert len(client.generate_recovery_codes("42")) == 10
    assert len(script.requests) == 2


def test_retries_stop_at_the_limit_with_the_last_answer() -> None:
    script = Script(*[problem(503, "service_unavailable", retry_after=5)] * 3)
    with pytest.raises(ServiceUnavailable) as raised, script.client(max_retries=2) as client:
        client.get_verification(VERIFICATION_ID)
    assert len(script.requests) == 3 and raised.value.retry_after == 5.0


def test_a_long_wait_is_held_requests_of_at_most_thirty_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter([0.0, 0.0, 0.0, 30.0, 30.0, 30.0, 30.0, 45.0, 45.0])
    monkeypatch.setattr("twostep_client._sync.client.monotonic", lambda: next(clock))
    script = Script(
        httpx.Response(200, json=VERIFICATION),
        httpx.Response(200, json={**VERIFICATION, "status": "pending"}),
    )
    with script.client() as client:
        verification = client.wait_for_verification(VERIFICATION_ID, timeout=45)
    assert verification.sent
    assert [r.url.params["wait"] for r in script.requests] == ["30.0", "15.0"]


def test_a_check_with_a_wait_answers_decided_or_still_queued() -> None:
    decided = {**CHECK, "status": "rejected", "completed_at": "2026-12-05T06:00:02Z"}
    script = Script(httpx.Response(200, json=decided))
    with script.client() as client:
        check = client.check(VERIFICATION_ID, "123456", wait=10)
    assert check.decided and not check.approved and check.completed_at is not None
    assert script.requests[0].url.params["wait"] == "10"


def test_ids_stay_one_path_segment() -> None:
    script = Script(
        httpx.Response(200, json={"user_id": "a/b", "two_step_enabled": False, "factors": []})
    )
    with script.client() as client:
        client.list_factors("a/b ../x")
    assert script.requests[0].url.raw_path == b"/v1/users/a%2Fb%20..%2Fx/factors"


async def test_the_async_client_speaks_the_same() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={**CHECK, "status": "approved"})

    async with AsyncTwostepClient(
        "http://twostep.test", "tsk_key", transport=httpx.MockTransport(answer)
    ) as client:
        check = await client.get_check(VERIFICATION_ID, CHECK_ID, wait=5)
    assert check.approved and seen[0].headers["Authorization"] == "Bearer tsk_key"


def test_the_sync_client_is_generated_from_the_async_one() -> None:
    generator = REPO / "clients" / "python" / "generate_sync.py"
    result = subprocess.run(
        [sys.executable, str(generator), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_webhook_signatures_from_twostep_verify_and_forgeries_do_not() -> None:
    body = json.dumps(
        {"id": "e1", "type": "verification.approved", "created_at": "2026-12-05T06:00:00Z",
         "data": VERIFICATION}
    ).encode()  # fmt: skip
    header = sign(["new-secret", "old-secret"], body)
    event = webhooks.parse("old-secret", header, body)
    assert (event.type, event.data["id"]) == ("verification.approved", VERIFICATION_ID)
    assert webhooks.verify_signature(["rotated", "new-secret"], header, body)
    assert not webhooks.verify_signature("new-secret", header, body.replace(b"42", b"43"))
    assert not webhooks.verify_signature("another", header, body)
    stale = sign(["new-secret"], body, timestamp=int(time.time()) - 301)
    assert not webhooks.verify_signature("new-secret", stale, body)
    with pytest.raises(webhooks.InvalidSignature):
        webhooks.parse("new-secret", "t=1,v1=00", body)
