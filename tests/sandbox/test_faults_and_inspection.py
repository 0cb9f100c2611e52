"""Failures on demand, and what the sandbox shows about what it was asked."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import requests

from sandbox.services import DEFAULT_SERVICE_SID
from tests.sandbox.conftest import ACCOUNT_SID, AUTH_TOKEN, checked, sdk_client, twilio_error
from tests.support import (
    SandboxClient,
    ServiceProcess,
    ThreadedServer,
    base_env,
    free_port,
    random_phone,
    wait_for_http,
)


@pytest.mark.parametrize(
    ("to", "code"), [("+14155550205", 60205), ("+14155550419", 60410), ("+14155550600", 60605)]
)
def test_refused_number_ranges(service: Any, sandbox: SandboxClient, to: str, code: int) -> None:
    error = twilio_error(lambda: service.verifications.create(to=to, channel="sms"))
    assert (error.status, error.code) == (403, code)
    assert sandbox.messages(to) == []
    assert sandbox.sends_to(to) == 0


@pytest.mark.parametrize(("to", "code"), [("+14155550205", 60205), ("+14155550419", 60410)])
def test_landlines_and_fraud_guard_refuse_sms_only(
    own_sandbox: ThreadedServer, to: str, code: int
) -> None:
    """Text failed, call me instead: a landline (or a range Fraud Guard blocks) takes a call."""
    twilio = sdk_client(own_sandbox.url)
    service = twilio.verify.v2.services(DEFAULT_SERVICE_SID)
    assert twilio_error(lambda: service.verifications.create(to=to, channel="sms")).code == code
    called = service.verifications.create(to=to, channel="call")
    assert (called.status, called.channel) == ("pending", "call")
    with SandboxClient(own_sandbox.url) as sandbox:
        assert [m["channel"] for m in sandbox.messages(to)] == ["call"]
    geo = twilio_error(lambda: service.verifications.create(to="+14155550600", channel="call"))
    assert geo.code == 60605  # geo permissions hold for every channel
    checked(twilio)


def test_number_rules_can_be_replaced(service: Any, sandbox: SandboxClient) -> None:
    sandbox.set_faults(
        number_rules=[
            {"prefix": "+1212", "status": 400, "code": 60200, "message": "Invalid parameter: To"}
        ]
    )
    assert (
        twilio_error(lambda: service.verifications.create(to="+12125550100", channel="sms")).code
        == 60200
    )
    assert service.verifications.create(to="+14155550205", channel="sms").status == "pending"


def test_server_errors_and_throttling(service: Any, sandbox: SandboxClient) -> None:
    sandbox.set_faults(error_rate=1.0, error_status=500, error_code=20500)
    error = twilio_error(lambda: service.verifications.create(to=random_phone(), channel="sms"))
    assert (error.status, error.code) == (500, 20500)
    sandbox.set_faults(throttle_rate=1.0)
    to = random_phone()
    error = twilio_error(lambda: service.verifications.create(to=to, channel="sms"))
    assert (error.status, error.code) == (429, 20429)
    raw = httpx.post(
        f"{sandbox.url}/v2/Services/{DEFAULT_SERVICE_SID}/Verifications",
        data={"To": to, "Channel": "sms"},
        auth=(ACCOUNT_SID, AUTH_TOKEN),
    )
    assert raw.status_code == 429 and raw.headers["retry-after"] == "1"
    assert sandbox.messages(to) == [], "a refused request must not send"


def test_a_hang_outlasts_the_client_but_the_request_was_carried_out(
    sandbox: SandboxClient, sandbox_server: ThreadedServer
) -> None:
    sandbox.set_faults(timeout_rate=1.0, hang_seconds=2.0)
    twilio = sdk_client(sandbox_server.url)
    twilio.http_client.timeout = 0.5
    to = random_phone()
    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        twilio.verify.v2.services(DEFAULT_SERVICE_SID).verifications.create(to=to, channel="sms")
    assert time.monotonic() - started < 1.5
    assert len(sandbox.messages(to)) == 1
    assert sandbox.stats()["outcomes"]["timeout"] >= 1
    twilio.http_client.session.close()


def test_latency_with_jitter(service: Any, sandbox: SandboxClient) -> None:
    sandbox.set_faults(latency_ms=300, jitter_ms=50)
    timings = []
    for _ in range(5):
        started = time.monotonic()
        service.verifications.create(to=random_phone(), channel="sms")
        timings.append(time.monotonic() - started)
    assert all(0.25 <= t < 0.6 for t in timings), timings


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 2},
        {"error_rate": 0.7, "throttle_rate": 0.5},
        {"error_status": 404},
        {"latency": 5},
        {"jitter_ms": 100, "latency_ms": 10},
        {"number_rules": [{"prefix": "1415", "status": 403, "code": 1}]},
        {"number_rules": [{"prefix": "+1", "status": 403, "code": 1, "channels": ["fax"]}]},
        [1],
    ],
)
def test_bad_fault_settings_are_refused_and_change_nothing(
    sandbox: SandboxClient, faults: Any
) -> None:
    before = sandbox.http.get("/sandbox/faults").json()
    response = sandbox.http.put("/sandbox/faults", json=faults)
    assert response.status_code == 400 and response.json()["detail"]
    assert sandbox.http.get("/sandbox/faults").json() == before


def test_faults_from_the_environment_at_start_up(tmp_path) -> None:
    port = free_port()
    faults = {"error_rate": 1.0, "error_status": 503}
    process = ServiceProcess(
        "sandbox",
        ["sandbox", "--port", str(port)],
        base_env(TWOSTEP_SANDBOX_FAULTS=json.dumps(faults)),
        tmp_path,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
        assert httpx.get(f"http://127.0.0.1:{port}/sandbox/faults").json()["error_rate"] == 1.0
        twilio = sdk_client(f"http://127.0.0.1:{port}")
        error = twilio_error(
            lambda: twilio.verify.v2.services(DEFAULT_SERVICE_SID).verifications.create(
                to=random_phone(), channel="sms"
            )
        )
        assert (error.status, error.code) == (503, 20503)
        twilio.http_client.session.close()
    finally:
        process.stop()
    assert "+1" not in process.log(), "the sandbox logged a phone number"


def test_messages_are_newest_first_and_filtered(service: Any, sandbox: SandboxClient) -> None:
    first, second = random_phone(), random_phone()
    sid = service.verifications.create(to=first, channel="sms").service_sid
    service.verifications.create(to=second, channel="call")
    service.verifications.create(to=first, channel="call")
    mine = sandbox.messages(first)
    assert [m["channel"] for m in mine] == ["call", "sms"]
    assert set(mine[0]) == {
        "to",
        "channel",
        "code",
        "body",
        "service_sid",
        "verification_sid",
        "created_at",
    }
    latest = sandbox.http.get("/sandbox/messages", params={"limit": 2}).json()
    assert [(m["to"], m["channel"]) for m in latest] == [(first, "call"), (second, "call")]
    assert sandbox.http.get("/sandbox/messages", params={"limit": "x"}).status_code == 400
    of_service = sandbox.http.get("/sandbox/messages", params={"service_sid": sid}).json()
    assert [(m["to"], m["channel"]) for m in of_service] == [
        (first, "call"),
        (second, "call"),
        (first, "sms"),
    ]


def test_stats_count_every_request_and_show_duplicates(own_sandbox: ThreadedServer) -> None:
    twilio = sdk_client(own_sandbox.url)
    service = twilio.verify.v2.services(DEFAULT_SERVICE_SID)
    once, twice = random_phone(), random_phone()
    service.verifications.create(to=once, channel="sms")
    service.verifications.create(to=twice, channel="sms")
    service.verifications.create(to=twice, channel="sms")
    service.verifications(twice).fetch()
    twilio_error(lambda: service.verification_checks.create(to=random_phone(), code="123456"))
    with SandboxClient(own_sandbox.url) as sandbox:
        stats = sandbox.stats()
        assert stats["requests_total"] == 5
        assert stats["requests_by_endpoint"] == {
            "CreateVerification": 3,
            "FetchVerification": 1,
            "CreateVerificationCheck": 1,
        }
        assert stats["responses_by_status"] == {"201": 3, "200": 1, "404": 1}
        assert stats["sends_by_to"] == {once: 1, twice: 2}
        assert (
            stats["destinations_sent_more_than_once"],
            stats["max_sends_to_one_destination"],
        ) == (1, 2)
        assert 1 <= stats["peak_requests_per_second"] <= 5

        sandbox.set_faults(error_rate=1.0)
        sandbox.reset()
        assert sandbox.stats()["requests_total"] == 0
        assert sandbox.messages() == []
        assert sandbox.http.get("/sandbox/faults").json()["error_rate"] == 0
    twilio.http_client.session.close()


def test_the_readme_snippet_works(sandbox_server: ThreadedServer) -> None:
    from tests.support import REPO

    readme = (REPO / "sandbox" / "README.md").read_text()
    section = readme.split("## Using it on its own", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    to = random_phone()
    snippet = snippet.replace("http://127.0.0.1:8765", sandbox_server.url).replace(
        "+14155550123", to
    )
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "sandbox/README.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["status"] == "approved"
    namespace["client"].http_client.session.close()


def test_an_unknown_path_is_a_twilio_404_and_counted(own_sandbox: ThreadedServer) -> None:
    response = httpx.get(f"{own_sandbox.url}/v2/Services/VA{'1' * 32}/Nothing")
    assert response.status_code == 404 and response.json()["code"] == 20404
    with SandboxClient(own_sandbox.url) as sandbox:
        stats = sandbox.stats()
    assert stats["requests_total"] == 1 and stats["outcomes"] == {"not_found": 1}
