"""Twilio Verify's rules as the sandbox keeps them, without HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandbox.app import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, Sandbox
from sandbox.common import TwilioError
from sandbox.faults import Faults
from sandbox.server import build_sandbox_from_env
from sandbox.services import DEFAULT_SERVICE_SID, Service, ServiceStore
from sandbox.state import Verification, VerifyState
from sandbox.stats import RateWindow

ACCOUNT = "AC" + "1" * 32
TO = "+14155550123"


@pytest.fixture
def state() -> VerifyState:
    state = VerifyState()
    state.services.ensure_default(ACCOUNT)
    return state


def service(state: VerifyState) -> Service:
    return state.services.get(DEFAULT_SERVICE_SID, ACCOUNT, "/Services")


def send(
    state: VerifyState, to: str | None, channel: str | None, on: Service | None = None
) -> Verification:
    target = on or service(state)
    return state.send(target, state.send_request(target, to, channel))


def twilio_error(call) -> TwilioError:
    with pytest.raises(TwilioError) as raised:
        call()
    return raised.value


def test_a_resend_keeps_the_sid_and_the_code_and_may_switch_channel(state: VerifyState) -> None:
    first = send(state, TO, "sms")
    code = first.code
    again = send(state, TO, "call")
    assert again.sid == first.sid and again.code == code and again.channel == "call"
    assert [m.channel for m in state.messages_to(TO, 10)] == ["call", "sms"]
    assert len(code) == 6 and code.isdigit()


def test_the_sixth_send_is_60203(state: VerifyState) -> None:
    for _ in range(5):
        send(state, TO, "sms")
    error = twilio_error(lambda: send(state, TO, "sms"))
    assert (error.status, error.code) == (429, 60203)


def test_wrong_codes_stay_pending_and_the_sixth_check_is_60202(state: VerifyState) -> None:
    verification = send(state, TO, "sms")
    wrong = "000000" if verification.code != "000000" else "111111"
    for _ in range(5):
        assert state.check(service(state), TO, None, wrong).status == "pending"
    error = twilio_error(lambda: state.check(service(state), TO, None, verification.code))
    assert (error.status, error.code) == (429, 60202)
    assert (
        twilio_error(lambda: state.check(service(state), TO, None, verification.code)).code == 20404
    )


def test_after_approval_checks_and_fetches_are_404(state: VerifyState) -> None:
    verification = send(state, TO, "sms")
    approved = state.check(service(state), None, verification.sid, verification.code)
    assert (approved.status, approved.valid) == ("approved", True)
    assert (
        twilio_error(lambda: state.check(service(state), TO, None, verification.code)).code == 20404
    )
    assert (
        twilio_error(lambda: state.fetch_verification(service(state), verification.sid)).code
        == 20404
    )
    assert send(state, TO, "sms").sid != verification.sid


def test_codes_expire_with_the_clock(state: VerifyState) -> None:
    verification = send(state, TO, "sms")
    state.clock.advance(599)
    assert state.fetch_verification(service(state), TO).sid == verification.sid
    state.clock.advance(1)
    assert (
        twilio_error(lambda: state.check(service(state), TO, None, verification.code)).code == 20404
    )


def test_cancel_ends_it_but_it_stays_fetchable_by_sid(state: VerifyState) -> None:
    verification = send(state, TO, "sms")
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
    error = twilio_error(lambda: send(state, to, channel))
    assert (error.status, error.code) == (400, code)


def test_a_check_needs_a_target_and_a_plausible_code(state: VerifyState) -> None:
    assert twilio_error(lambda: state.check(service(state), None, None, "123456")).code == 60221
    assert twilio_error(lambda: state.check(service(state), TO, None, "12")).code == 60200


def test_services_are_the_creating_accounts_and_only_real_ones_are_served(
    state: VerifyState,
) -> None:
    created = state.services.create(ACCOUNT, {"FriendlyName": "login", "CodeLength": "8"})
    assert len(send(state, TO, "sms", created).code) == 8
    for sid, account in (
        ("VA123", ACCOUNT),
        ("VA" + "1" * 32, ACCOUNT),  # well formed, never created
        (created.sid, "AC" + "2" * 32),  # another account's
    ):
        error = twilio_error(
            lambda sid=sid, account=account: state.services.get(sid, account, "/x")
        )
        assert (error.status, error.code, error.message) == (
            404,
            20404,
            "The requested resource /x was not found",
        )


def test_the_send_window_forgets_numbers_gone_quiet(state: VerifyState) -> None:
    """Memory follows the numbers of the last ten minutes, not every number ever sent to."""
    for n in range(50):
        send(state, f"+1415555{n:04d}", "call")
    assert len(state._sends) == 50
    state.clock.advance(600)
    send(state, TO, "sms")
    assert list(state._sends) == [(DEFAULT_SERVICE_SID, TO)]


def test_attempts_are_bounded_and_outlive_their_verification() -> None:
    state = VerifyState(attempts_kept=3)
    state.services.ensure_default(ACCOUNT)
    first = send(state, TO, "sms")
    assert state.check(service(state), TO, None, first.code).status == "approved"
    attempt = first.send_attempts[0].attempt_sid
    assert state.attempts.get(attempt, ACCOUNT).converted  # the verification itself is gone
    for n in range(3):
        send(state, f"+1212555{n:04d}", "sms")
    assert len(state.attempts) == 3
    assert twilio_error(lambda: state.attempts.get(attempt, ACCOUNT)).code == 20404


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


def test_the_state_file_is_used_only_when_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("TWOSTEP_SANDBOX_STATE_FILE", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert build_sandbox_from_env().state.services.store is None
    path = tmp_path / "from-env.json"
    monkeypatch.setenv("TWOSTEP_SANDBOX_STATE_FILE", str(path))
    store = build_sandbox_from_env().state.services.store
    assert store is not None and store.path == path
    assert [s["sid"] for s in json.loads(path.read_text())["services"]] == [DEFAULT_SERVICE_SID]
    given = tmp_path / "given.json"
    given_store = build_sandbox_from_env(state_file=given).state.services.store
    assert given_store is not None and given_store.path == given


def test_the_state_file_is_replaced_whole_and_a_bad_one_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    state = VerifyState(store=ServiceStore(path))
    state.services.ensure_default(ACCOUNT)
    created = state.services.create(ACCOUNT, {"FriendlyName": "kept", "Totp.Skew": "2"})
    again = VerifyState(store=ServiceStore(path)).services.get(created.sid, ACCOUNT, "/x")
    assert (again.friendly_name, again.settings["totp"]["skew"]) == ("kept", 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    path.write_text('{"services": [{"sid": "VA1"}]}')
    with pytest.raises(ValueError, match="malformed"):
        VerifyState(store=ServiceStore(path))


def test_a_sandbox_takes_both_credentials_or_neither() -> None:
    with pytest.raises(ValueError, match="both"):
        Sandbox(account_sid="AC" + "1" * 32)
    assert (
        (Sandbox().account_sid, Sandbox().auth_token)
        == (
            DEFAULT_ACCOUNT_SID,
            DEFAULT_AUTH_TOKEN,
        )
        == ("AC" + "0" * 32, "sandbox")
    )
