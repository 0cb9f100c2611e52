"""Twilio Verify's rules as the sandbox keeps them, without HTTP."""

from __future__ import annotations

import pytest

from sandbox.faults import Faults
from sandbox.state import RateWindow, TwilioError, VerifyState

SERVICE = "VA" + "1" * 32
ACCOUNT = "AC" + "1" * 32
TO = "+14155550123"


@pytest.fixture
def state() -> VerifyState:
    return VerifyState()


def service(state: VerifyState):
    return state.service(SERVICE, ACCOUNT)


def twilio_error(call) -> TwilioError:
    with pytest.raises(TwilioError) as raised:
        call()
    return raised.value


def test_a_resend_keeps_the_sid_and_the_code_and_may_switch_channel(state: VerifyState) -> None:
    first = state.create_verification(service(state), TO, "sms")
    code = first.code
    again = state.create_verification(service(state), TO, "call")
    assert again.sid == first.sid and again.code == code and again.channel == "call"
    assert [m.channel for m in state.messages_to(TO, 10)] == ["call", "sms"]
    assert len(code) == 6 and code.isdigit()


def test_the_sixth_send_is_60203(state: VerifyState) -> None:
    for _ in range(5):
        state.create_verification(service(state), TO, "sms")
    error = twilio_error(lambda: state.create_verification(service(state), TO, "sms"))
    assert (error.status, error.code) == (429, 60203)


def test_wrong_codes_stay_pending_and_the_sixth_check_is_60202(state: VerifyState) -> None:
    verification = state.create_verification(service(state), TO, "sms")
    wrong = "000000" if verification.code != "000000" else "111111"
    for _ in range(5):
        assert state.check(service(state), TO, None, wrong).status == "pending"
    error = twilio_error(lambda: state.check(service(state), TO, None, verification.code))
    assert (error.status, error.code) == (429, 60202)
    assert (
        twilio_error(lambda: state.check(service(state), TO, None, verification.code)).code == 20404
    )


def test_after_approval_checks_and_fetches_are_404(state: VerifyState) -> None:
    verification = state.create_verification(service(state), TO, "sms")
    approved = state.check(service(state), None, verification.sid, verification.code)
    assert (approved.status, approved.valid) == ("approved", True)
    assert (
        twilio_error(lambda: state.check(service(state), TO, None, verification.code)).code == 20404
    )
    assert (
        twilio_error(lambda: state.fetch_verification(service(state), verification.sid)).code
        == 20404
    )
    assert state.create_verification(service(state), TO, "sms").sid != verification.sid


def test_codes_expire_with_the_clock(state: VerifyState) -> None:
    verification = state.create_verification(service(state), TO, "sms")
    state.clock.advance(599)
    assert state.fetch_verification(service(state), TO).sid == verification.sid
    state.clock.advance(1)
    assert (
        twilio_error(lambda: state.check(service(state), TO, None, verification.code)).code == 20404
    )


def test_cancel_ends_it_but_it_stays_fetchable_by_sid(state: VerifyState) -> None:
    verification = state.create_verification(service(state), TO, "sms")
    assert state.update_verification(service(state), TO, "canceled").status == "canceled"
    assert state.fetch_verification(service(state), verification.sid).status == "canceled"
    assert twilio_error(lambda: state.fetch_verification(service(state), TO)).code == 20404
    assert (
        twilio_error(
            lambda: state.update_verification(service(state), verification.sid, "nope")
        ).code
        == 60200
    )


@pytest.mark.parametrize(
    ("to", "channel", "code"),
    [
        (None, "sms", 20001),
        (TO, None, 20001),
        ("12", "sms", 60200),
        (TO, "pigeon", 60200),
        ("a@b", "email", 60200),
    ],
)
def test_bad_create_parameters(
    state: VerifyState, to: str | None, channel: str | None, code: int
) -> None:
    error = twilio_error(lambda: state.create_verification(service(state), to, channel))
    assert (error.status, error.code) == (400, code)


def test_a_check_needs_a_target_and_a_plausible_code(state: VerifyState) -> None:
    assert twilio_error(lambda: state.check(service(state), None, None, "123456")).code == 60221
    assert twilio_error(lambda: state.check(service(state), TO, None, "12")).code == 60200


def test_service_sids_must_be_well_formed(state: VerifyState) -> None:
    assert twilio_error(lambda: state.service("VA123", ACCOUNT)).code == 20404
    assert twilio_error(lambda: state.service("AC" + "1" * 32, ACCOUNT)).code == 20404
    created = state.create_service(ACCOUNT, "login", "8")
    assert state.create_verification(created, TO, "sms").code.__len__() == 8


def test_peak_rate_is_the_busiest_sliding_second() -> None:
    window = RateWindow()
    for at in (0.0, 0.1, 0.5, 0.95, 1.2, 1.3, 3.0):
        window.hit(at)
    assert window.peak == 4  # 0.5, 0.95, 1.2, 1.3 lie within one second


def test_faults_validate_and_draw_their_rates() -> None:
    faults = Faults.from_json(
        {"error_rate": 0.2, "throttle_rate": 0.1, "timeout_rate": 0.05, "seed": 7}
    )
    draws = [faults.draw() for _ in range(20_000)]
    assert draws.count("error") / 20_000 == pytest.approx(0.2, abs=0.02)
    assert draws.count("throttle") / 20_000 == pytest.approx(0.1, abs=0.02)
    assert draws.count("timeout") / 20_000 == pytest.approx(0.05, abs=0.01)
    for bad in (
        {"error_rate": 1.5},
        {"error_rate": 0.6, "throttle_rate": 0.6},
        {"nope": 1},
        {"error_status": 404},
        {"jitter_ms": 10},
    ):
        with pytest.raises(ValueError, match=r"must|unknown|exceed"):
            Faults.from_json(bad)
