"""Everything per service: the send limit (five in ten minutes), codes, messages, custom codes."""

from __future__ import annotations

from typing import Any

from twilio.rest import Client

from sandbox.services import DEFAULT_SERVICE_SID
from tests.sandbox.conftest import checked, sdk_client, twilio_error
from tests.support import SandboxClient, ThreadedServer, random_phone


def test_the_sixth_send_is_refused_with_60203(service: Any, sandbox: SandboxClient) -> None:
    to = random_phone()
    for _ in range(5):
        service.verifications.create(to=to, channel="sms")
    error = twilio_error(lambda: service.verifications.create(to=to, channel="sms"))
    assert (error.status, error.code) == (429, 60203)
    assert sandbox.sends_to(to) == 5


def test_the_limit_counts_sends_across_verifications(service: Any) -> None:
    """Canceling and starting again does not reset Twilio's five sends in ten minutes."""
    to = random_phone()
    for _ in range(5):
        service.verifications.create(to=to, channel="sms")
        service.verifications(to).update(status="canceled")
    error = twilio_error(lambda: service.verifications.create(to=to, channel="sms"))
    assert (error.status, error.code) == (429, 60203)


def test_the_window_moves_with_the_sandbox_clock(own_sandbox: ThreadedServer) -> None:
    twilio = sdk_client(own_sandbox.url)
    service = twilio.verify.v2.services(DEFAULT_SERVICE_SID)
    to = random_phone()
    with SandboxClient(own_sandbox.url) as sandbox:
        service.verifications.create(to=to, channel="sms")  # at 0:00
        sandbox.advance_clock(300)
        for _ in range(4):  # at 5:00
            service.verifications.create(to=to, channel="call")
        sandbox.advance_clock(299)
        assert (
            twilio_error(lambda: service.verifications.create(to=to, channel="sms")).code == 60203
        )  # at 9:59 all five are within ten minutes
        sandbox.advance_clock(1)
        # At 10:00 the first send left the window; the verification expired with it.
        service.verifications.create(to=to, channel="sms")
        assert (
            twilio_error(lambda: service.verifications.create(to=to, channel="sms")).code == 60203
        )
        assert len(sandbox.messages(to)) == 6
    checked(twilio)


def test_an_approval_clears_the_count_for_its_number(service: Any, sandbox: SandboxClient) -> None:
    to = random_phone()
    for _ in range(5):
        service.verifications.create(to=to, channel="sms")
    assert service.verification_checks.create(to=to, code=sandbox.latest_code(to)).valid
    for _ in range(5):
        service.verifications.create(to=to, channel="sms")
    assert twilio_error(lambda: service.verifications.create(to=to, channel="sms")).code == 60203


def test_limits_and_codes_are_per_service(
    twilio: Client, service: Any, sandbox: SandboxClient
) -> None:
    other = twilio.verify.v2.services(
        twilio.verify.v2.services.create(friendly_name="Other shop", code_length=8).sid
    )
    to = random_phone()
    for _ in range(5):
        mine = service.verifications.create(to=to, channel="sms")
    theirs = other.verifications.create(to=to, channel="sms")
    assert theirs.sid != mine.sid and len(theirs.send_code_attempts) == 1
    inbox = sandbox.messages(to)
    assert [m["service_sid"] for m in inbox[:2]] == [theirs.service_sid, mine.service_sid]
    assert inbox[0]["body"] == f"Your Other shop verification code is: {inbox[0]['code']}"
    assert inbox[1]["body"] == f"Your twostep tests verification code is: {inbox[1]['code']}"
    assert len(inbox[0]["code"]) == 8 and len(inbox[1]["code"]) == 6
    # A code is checked only against its own service's verification.
    assert service.verification_checks.create(to=to, code=inbox[1]["code"]).valid
    assert (
        twilio_error(
            lambda: other.verification_checks.create(verification_sid=mine.sid, code="123456")
        ).code
        == 20404
    )


def test_the_do_not_share_warning_is_added_to_sms_only(
    twilio: Client, sandbox: SandboxClient
) -> None:
    created = twilio.verify.v2.services.create(
        friendly_name="Careful", do_not_share_warning_enabled=True
    )
    to = random_phone()
    twilio.verify.v2.services(created.sid).verifications.create(to=to, channel="sms")
    twilio.verify.v2.services(created.sid).verifications.create(to=to, channel="call")
    call, sms = sandbox.messages(to)
    assert sms["body"] == (
        f"Your Careful verification code is: {sms['code']}. Don\u2019t share this code "
        "with anyone; our employees will never ask for the code"
    )
    assert call["body"] == f"Your Careful verification code is: {call['code']}"


class TestCustomCode:
    def test_refused_unless_the_service_enables_it(self, service: Any) -> None:
        to = random_phone()
        error = twilio_error(
            lambda: service.verifications.create(to=to, channel="sms", custom_code="424242")
        )
        assert (error.status, error.code) == (403, 60204)
        assert error.msg.endswith("Service does not support this feature")

    def test_with_it_the_code_is_the_custom_code(
        self, twilio: Client, sandbox: SandboxClient
    ) -> None:
        created = twilio.verify.v2.services.create(
            friendly_name="Own codes", custom_code_enabled=True
        )
        assert created.custom_code_enabled is True
        service = twilio.verify.v2.services(created.sid)
        to = random_phone()
        sid = service.verifications.create(to=to, channel="sms", custom_code="X7Q2").sid
        assert sandbox.latest_code(to) == "X7Q2"
        # A re-send's custom code replaces the pending one's (sandbox/README.md's choice).
        assert service.verifications.create(to=to, channel="sms", custom_code="8A9B0C").sid == sid
        assert sandbox.latest_code(to) == "8A9B0C"
        assert not service.verification_checks.create(to=to, code="X7Q2").valid
        assert service.verification_checks.create(to=to, code="8A9B0C").valid
        for bad in ("123", "12345678901"):
            error = twilio_error(
                lambda bad=bad: service.verifications.create(to=to, channel="sms", custom_code=bad)
            )
            assert (error.status, error.code) == (400, 60200)
