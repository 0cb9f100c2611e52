"""Verify Attempts: one per code sent, converted on approval, kept after the verification."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from sandbox.services import DEFAULT_SERVICE_SID
from tests.sandbox.conftest import RecordingHttpClient, checked, sdk_client, twilio_error
from tests.support import SandboxClient, ThreadedServer, random_phone


def test_one_attempt_per_send_converted_when_approved(
    twilio: Client, service: Any, sandbox: SandboxClient
) -> None:
    to = random_phone()
    service.verifications.create(to=to, channel="sms")
    verification = service.verifications.create(to=to, channel="call")
    sent = [a["attempt_sid"] for a in verification.send_code_attempts]
    attempts = twilio.verify.v2.verification_attempts.list(verification_sid=verification.sid)
    assert [a.sid for a in attempts] == sent[::-1]  # newest first
    assert [a.channel for a in attempts] == ["call", "sms"]
    assert {a.conversion_status for a in attempts} == {"unconverted"}
    assert attempts[0].channel_data == {
        "verification_sid": verification.sid,
        "to": to,
        "status": "unconfirmed",
        "code_length": 6,
        "country": "US",
    }
    assert (attempts[0].service_sid, attempts[0].account_sid) == (
        verification.service_sid,
        verification.account_sid,
    )
    assert attempts[0].url.endswith(f"/v2/Attempts/{sent[1]}")

    service.verification_checks.create(to=to, code=sandbox.latest_code(to))
    assert twilio_error(lambda: service.verifications(verification.sid).fetch()).code == 20404
    # The verification is gone; its attempts are the record that it was approved.
    after = twilio.verify.v2.verification_attempts.list(verification_sid=verification.sid)
    assert [(a.sid, a.conversion_status) for a in after] == [
        (sent[1], "converted"),
        (sent[0], "converted"),
    ]
    fetched = twilio.verify.v2.verification_attempts(sent[0]).fetch()
    assert (fetched.conversion_status, fetched.channel_data["status"]) == ("converted", "confirmed")


def test_approval_by_update_converts_and_a_cancel_does_not(twilio: Client, service: Any) -> None:
    approved = service.verifications.create(to=random_phone(), channel="sms")
    canceled = service.verifications.create(to=random_phone(), channel="sms")
    service.verifications(approved.sid).update(status="approved")
    service.verifications(canceled.sid).update(status="canceled")
    attempts = twilio.verify.v2.verification_attempts
    assert attempts.list(verification_sid=approved.sid)[0].conversion_status == "converted"
    assert attempts.list(verification_sid=canceled.sid)[0].conversion_status == "unconverted"


def test_the_filters(own_sandbox: ThreadedServer) -> None:
    twilio = sdk_client(own_sandbox.url)
    attempts = twilio.verify.v2.verification_attempts
    default = twilio.verify.v2.services(DEFAULT_SERVICE_SID)
    other_sid = twilio.verify.v2.services.create(friendly_name="Other").sid
    other = twilio.verify.v2.services(other_sid)
    early, late = random_phone(), random_phone()
    with SandboxClient(own_sandbox.url) as sandbox:
        first = default.verifications.create(to=early, channel="sms")
        sandbox.advance_clock(3600)
        default.verifications.create(to=late, channel="call")
        second = other.verifications.create(to=late, channel="sms")
        other.verification_checks.create(to=late, code=sandbox.latest_code(late))

    def sids(**filters: Any) -> set[str]:
        return {a.verification_sid for a in attempts.list(**filters)}

    late_default = default.verifications(late).fetch().sid
    assert sids() == {first.sid, late_default, second.sid}
    assert sids(verify_service_sid=other_sid) == {second.sid}
    assert sids(channel_data_to=early) == {first.sid}
    assert sids(channel="call") == {late_default}
    assert sids(status="CONVERTED") == sids(status="converted") == {second.sid}
    assert sids(status="unconverted") == {first.sid, late_default}
    assert sids(country="us") == sids() and sids(country="GB") == set()
    boundary = first.date_created + timedelta(seconds=3600)  # both bounds inclusive
    assert sids(date_created_after=boundary) == {late_default, second.sid}
    assert sids(date_created_before=boundary - timedelta(seconds=1)) == {first.sid}
    assert sids(verification_sid="VE" + "0" * 32) == set()
    checked(twilio)


@pytest.mark.parametrize(
    "bad",
    [
        {"status": "maybe"},
        {"channel": "fax"},
        {"verification_sid": "VE123"},
        {"verify_service_sid": "AC" + "0" * 32},
        {"date_created_after": "yesterday"},
        {"country": "USA"},
    ],
)
def test_a_malformed_filter_is_refused_not_ignored(
    twilio: Client, recorder: RecordingHttpClient, bad: dict[str, Any]
) -> None:
    # The SDK raises a bare TwilioException when a page cannot be fetched.
    with pytest.raises(TwilioException, match="Unable to fetch page"):
        twilio.verify.v2.verification_attempts.list(**bad)
    assert (recorder.exchanges[-1].status, recorder.exchanges[-1].body["code"]) == (400, 60200)


def test_attempts_page_newest_first(own_sandbox: ThreadedServer) -> None:
    twilio = sdk_client(own_sandbox.url)
    service = twilio.verify.v2.services(DEFAULT_SERVICE_SID)
    sent = [
        service.verifications.create(to=random_phone(), channel="sms").send_code_attempts[0][
            "attempt_sid"
        ]
        for _ in range(7)
    ]
    listed = twilio.verify.v2.verification_attempts.list(page_size=3)
    assert [a.sid for a in listed] == sent[::-1]
    page = twilio.verify.v2.verification_attempts.page(page_size=3, channel="sms")
    assert "Channel=sms" in page.next_page_url  # the filters travel with the page
    assert [a.sid for a in page.next_page()] == sent[3::-1][:3]
    checked(twilio)


def test_an_unknown_attempt_is_not_found(twilio: Client) -> None:
    error = twilio_error(lambda: twilio.verify.v2.verification_attempts("VL" + "0" * 32).fetch())
    assert (error.status, error.code) == (404, 20404)
    assert error.msg.endswith(f"/Attempts/VL{'0' * 32} was not found")
