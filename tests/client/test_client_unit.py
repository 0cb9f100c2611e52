"""The client's own rules, against scripted answers (httpx.MockTransport): which problem becomes
which exception, what is tried again and with which key, how a long wait is split, and that the
sync client is still what unasync makes of the async one."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from twostep_client import (
    AsyncTwostepClient,
    Check,
    CountryNotAllowed,
    EventPage,
    Factors,
    MaxAttemptsReached,
    NoVerifiedFactor,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    TwostepClient,
    TwostepConnectionError,
    UnexpectedAnswer,
    UserLocked,
    Verification,
    VerificationNotPending,
    webhooks,
)
from twostep_client._async import client as async_client
from twostep_client._models import Enrollment, Factor
from twostep_client._sync import client as sync_client
from twostep_client.errors import ApiError, Conflict, InvalidRequest

from api.schemas import EventOut, EventsOut, FactorEnrollmentOut, FactorOut, FactorsOut
from shared.verifications.views import CheckOut, ErrorOut, VerificationOut
from shared.webhooks.signatures import sign

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

    def __init__(
        self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]
    ) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer if isinstance(answer, httpx.Response) else answer(request)

    def client(self, **options: Any) -> TwostepClient:
        return TwostepClient(
            "http://twostep.test/", "tsk_key", transport=httpx.MockTransport(self), **options
        )


@pytest.fixture(autouse=True)
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The sync client's sleeps, recorded instead of slept (its own `time` only)."""
    slept: list[float] = []
    monkeypatch.setattr(sync_client, "time", SimpleNamespace(sleep=slept.append))
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
        (problem(500, "internal_error"), ServerError, {"status": 500}),
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


@pytest.mark.parametrize(
    "failure", [httpx.ReadTimeout("lost"), problem(503, "service_unavailable", retry_after=1)]
)
def test_a_write_the_api_does_not_key_is_not_repeated(failure: Any) -> None:
    calls: list[Callable[[TwostepClient], object]] = [
        lambda client: client.resend(VERIFICATION_ID, channel="call"),
        lambda client: client.redeem_recovery_code("42", "7K2P-QM9X-D4RT"),
    ]
    for call in calls:
        script = Script(failure)
        with pytest.raises((TwostepConnectionError, ServiceUnavailable)), script.client() as c:
            call(c)
        assert len(script.requests) == 1


def test_a_keyed_post_still_in_progress_is_asked_again_and_a_proxy_error_too() -> None:
    script = Script(
        problem(409, "conflict"),
        httpx.Response(502, text="bad gateway"),
        httpx.Response(202, json=CHECK),
    )
    with script.client() as client:
        check = client.check(VERIFICATION_ID, "123456", wait=0)
    assert not check.decided and len(script.requests) == 3
    assert len({r.headers["Idempotency-Key"] for r in script.requests}) == 1


def test_a_proxys_bare_page_is_a_server_error_once_the_retries_are_spent() -> None:
    script = Script(*[httpx.Response(502, text="<html>bad gateway</html>")] * 3)
    with pytest.raises(ServerError) as raised, script.client() as client:
        client.list_factors("42")
    assert (raised.value.status, raised.value.code, len(script.requests)) == (
        502,
        "internal_error",
        3,
    )


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


class Clock:
    """``monotonic`` for the client: time moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(sync_client, "monotonic", clock)
    return clock


def test_a_long_wait_is_held_requests_of_at_most_thirty_seconds(clock: Clock) -> None:
    def held(request: httpx.Request) -> httpx.Response:
        clock.now += float(request.url.params["wait"])
        sent = len(script.requests) == 2
        return httpx.Response(200, json={**VERIFICATION, "status": "pending" if sent else "queued"})

    script = Script(held, held)
    with script.client() as client:
        verification = client.wait_for_verification(VERIFICATION_ID, timeout=45)
    assert verification.sent
    assert [r.url.params["wait"] for r in script.requests] == ["30.0", "15.0"]
    # The read timeout covers the wait: the API holds the answer that long on purpose.
    assert [r.extensions["timeout"]["read"] for r in script.requests] == [40.0, 25.0]


def test_a_verification_asked_for_with_a_wait_is_held_until_it_is_sent() -> None:
    script = Script(httpx.Response(200, json={**VERIFICATION, "status": "pending"}))
    with script.client() as client:
        verification = client.start_verification("+14155550123", wait=45)
    assert verification.sent
    (request,) = script.requests
    # One request, held at most 30 s (the API's cap), its read timeout covering the wait.
    assert (request.method, request.url.params["wait"]) == ("POST", "30.0")
    assert request.extensions["timeout"]["read"] == pytest.approx(40.0, abs=0.5)
    assert "Idempotency-Key" in request.headers


def test_a_retried_long_poll_waits_only_for_what_is_left(clock: Clock) -> None:
    def lost_after_twenty_seconds(request: httpx.Request) -> httpx.Response:
        clock.now += 20
        raise httpx.ReadError("connection reset", request=request)

    sent = httpx.Response(200, json={**VERIFICATION, "status": "pending"})
    script = Script(lost_after_twenty_seconds, sent)
    with script.client() as client:
        client.wait_for_verification(VERIFICATION_ID, timeout=30)
    assert [r.url.params["wait"] for r in script.requests] == ["30.0", "10.0"]


def test_a_check_waits_past_thirty_seconds_by_reading_it_again(clock: Clock) -> None:
    def held(request: httpx.Request) -> httpx.Response:
        clock.now += float(request.url.params.get("wait", 0))
        decided = len(script.requests) == 2
        return httpx.Response(200, json={**CHECK, "status": "approved" if decided else "queued"})

    script = Script(held, held)
    with script.client() as client:
        check = client.check(VERIFICATION_ID, "123456", wait=45)
    assert check.approved
    assert [(r.method, r.url.params["wait"]) for r in script.requests] == [
        ("POST", "30.0"),
        ("GET", "15.0"),
    ]
    assert script.requests[1].url.path.endswith(f"/checks/{CHECK_ID}")


def test_a_check_with_a_wait_answers_decided_or_still_queued() -> None:
    decided = {**CHECK, "status": "rejected", "completed_at": "2026-12-05T06:00:02Z"}
    script = Script(httpx.Response(200, json=decided))
    with script.client() as client:
        check = client.check(VERIFICATION_ID, "123456", wait=10)
    assert check.decided and not check.approved and check.completed_at is not None
    assert script.requests[0].url.params["wait"] == "10.0"


@pytest.mark.parametrize(
    "body",
    [
        {**VERIFICATION, "status": "teleported"},
        {key: value for key, value in VERIFICATION.items() if key != "channel"},
    ],
)
def test_an_answer_the_client_cannot_read_is_its_own_error(body: dict[str, Any]) -> None:
    with pytest.raises(UnexpectedAnswer), Script(httpx.Response(200, json=body)).client() as c:
        c.get_verification(VERIFICATION_ID)
    page = httpx.Response(200, text="<html>login portal</html>")
    with pytest.raises(UnexpectedAnswer), Script(page).client() as c:
        c.get_verification(VERIFICATION_ID)


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b"])
def test_an_id_that_cannot_be_one_path_segment_is_refused_before_sending(bad: str) -> None:
    script = Script()
    with pytest.raises(ValueError, match="cannot be an id"), script.client() as client:
        client.list_factors(bad)
    assert script.requests == []


def test_ids_stay_one_path_segment() -> None:
    script = Script(
        httpx.Response(200, json={"user_id": "a/b", "two_step_enabled": False, "factors": []})
    )
    with script.client() as client:
        client.list_factors("a b?c#..")
    assert script.requests[0].url.raw_path == b"/v1/users/a%20b%3Fc%23../factors"


async def test_the_async_client_retries_and_sleeps_on_its_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(async_client, "asyncio", SimpleNamespace(sleep=sleep))
    answers = [problem(503, "service_unavailable", retry_after=1), httpx.Response(200, json=CHECK)]
    async with AsyncTwostepClient(
        "http://twostep.test", "tsk_key", transport=httpx.MockTransport(lambda _: answers.pop(0))
    ) as client:
        check = await client.get_check(VERIFICATION_ID, CHECK_ID)
    assert check.id == CHECK_ID and slept == [1.0] and not answers


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


def test_the_servers_own_shapes_read_as_the_clients_types() -> None:
    """The API's response models, dumped as the API dumps them, parse with the client."""
    now = "2026-12-05T06:00:00Z"
    failure = ErrorOut(code="landline_not_supported", message="60205", provider_code=60205)
    verification = VerificationOut.model_validate({**VERIFICATION, "error": failure})
    factor = FactorOut.model_validate(
        {"id": CHECK_ID, "user_id": "42", "type": "phone", "phone": "+1415•••••23",
         "channel": "call", "status": "verified", "created_at": now, "verified_at": now}
    )  # fmt: skip
    event = EventOut.model_validate(
        {"id": 7, "type": "user.locked", "occurred_at": now, "user_id": "42", "api_key": "login",
         "client_ip": "203.0.113.9", "destination": None, "verification_id": VERIFICATION_ID,
         "factor_id": None, "detail": {"seconds": 60}}
    )  # fmt: skip
    read = Verification.from_json(verification.model_dump(mode="json"))
    assert read.error is not None and read.error.provider_code == 60205
    check = CheckOut.model_validate({**CHECK, "status": "max_attempts_reached"})
    assert Check.from_json(check.model_dump(mode="json")).status == "max_attempts_reached"
    enrolment = FactorEnrollmentOut(factor=factor, verification=verification)
    assert Enrollment.from_json(enrolment.model_dump(mode="json")).factor.channel == "call"
    listed = FactorsOut(user_id="42", two_step_enabled=True, factors=[factor])
    assert Factors.from_json(listed.model_dump(mode="json")).verified[0].id == CHECK_ID
    page = EventsOut(events=[event], next_before=7).model_dump(mode="json")
    assert EventPage.from_json(page).events[0].detail == {"seconds": 60}


FACTOR = {
    "id": "4c7a0b8e-0000-4000-8000-000000000001",
    "user_id": "42",
    "type": "phone",
    "label": None,
    "phone": "+1415•••••23",
    "email": None,
    "channel": "sms",
    "status": "disabled",
    "disabled_reason": "in_use",
    "created_at": "2026-12-07T20:00:00+00:00",
    "verified_at": None,
}


def test_a_factor_says_why_it_is_disabled_and_a_reason_it_does_not_know_is_an_error() -> None:
    assert Factor.from_json(FACTOR).disabled_reason == "in_use"
    assert Factor.from_json({**FACTOR, "disabled_reason": None}).disabled_reason is None
    with pytest.raises(UnexpectedAnswer):
        Factor.from_json({**FACTOR, "disabled_reason": "stolen"})
