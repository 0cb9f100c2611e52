"""Verify Services as real resources: created, listed, updated, deleted, owned, persisted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twilio.base.exceptions import TwilioException
from twilio.rest import Client

from sandbox.services import DEFAULT_SERVICE_SID
from tests.sandbox.conftest import RecordingHttpClient, checked, sdk_client, twilio_error
from tests.support import (
    SandboxClient,
    ServiceProcess,
    ThreadedServer,
    base_env,
    free_port,
    random_phone,
    wait_for_http,
)

CR = "CR" + "1" * 32
HJ = "HJ" + "2" * 32
MG = "MG" + "3" * 32
EVERY_SETTING: dict[str, Any] = {
    "code_length": 7,
    "lookup_enabled": True,
    "skip_sms_to_landlines": True,
    "dtmf_input_required": True,
    "tts_name": "alice",
    "psd2_enabled": True,
    "do_not_share_warning_enabled": True,
    "custom_code_enabled": True,
    "push_include_date": True,
    "push_apn_credential_sid": CR,
    "push_fcm_credential_sid": CR,
    "totp_issuer": "Acme",
    "totp_time_step": 45,
    "totp_code_length": 8,
    "totp_skew": 0,
    "default_template_sid": HJ,
    "whatsapp_msg_service_sid": MG,
    "whatsapp_from": "whatsapp:+14155550123",
    "passkeys_relying_party_id": "acme.test",
    "passkeys_relying_party_name": "Acme",
    "passkeys_relying_party_origins": "acme.test, login.acme.test",
    "passkeys_authenticator_attachment": "cross-platform",
    "passkeys_discoverable_credentials": "preferred",
    "passkeys_user_verification": "required",
    "verify_event_subscription_enabled": True,
}


def test_every_setting_is_stored_and_echoed(twilio: Client) -> None:
    created = twilio.verify.v2.services.create(friendly_name="All of it", **EVERY_SETTING)
    for answer in (created, twilio.verify.v2.services(created.sid).fetch()):
        assert (answer.code_length, answer.tts_name) == (7, "alice")
        assert answer.lookup_enabled and answer.skip_sms_to_landlines
        assert answer.dtmf_input_required and answer.psd2_enabled
        assert answer.do_not_share_warning_enabled and answer.custom_code_enabled
        assert answer.verify_event_subscription_enabled
        assert answer.default_template_sid == HJ
        assert answer.push == {
            "include_date": True,
            "apn_credential_sid": CR,
            "fcm_credential_sid": CR,
        }
        assert answer.totp == {"issuer": "Acme", "time_step": 45, "code_length": 8, "skew": 0}
        assert answer.whatsapp == {"msg_service_sid": MG, "from": "whatsapp:+14155550123"}
        assert answer.passkeys == {
            "relying_party": {
                "id": "acme.test",
                "name": "Acme",
                "origins": ["acme.test", "login.acme.test"],
            },
            "authenticator_attachment": "cross-platform",
            "discoverable_credentials": "preferred",
            "user_verification": "required",
        }


def test_update_changes_only_what_it_carries(own_sandbox: ThreadedServer) -> None:
    twilio = sdk_client(own_sandbox.url)
    created = twilio.verify.v2.services.create(
        friendly_name="Before", totp_issuer="Acme", code_length=5
    )
    with SandboxClient(own_sandbox.url) as sandbox:
        sandbox.advance_clock(60)
    updated = twilio.verify.v2.services(created.sid).update(
        friendly_name="After", totp_skew=2, lookup_enabled=True
    )
    assert (updated.friendly_name, updated.code_length, updated.lookup_enabled) == (
        "After",
        5,
        True,
    )
    assert updated.totp == {"issuer": "Acme", "time_step": None, "code_length": None, "skew": 2}
    # The clock moved 60 s; Twilio's timestamps are whole seconds, so the real time between the
    # two calls may add one more when a second ticks over in between.
    assert 60 <= (updated.date_updated - updated.date_created).total_seconds() <= 61
    assert updated.date_created == created.date_created
    checked(twilio)


@pytest.mark.parametrize(
    "setting",
    [
        {"totp_time_step": 19},
        {"totp_time_step": 61},
        {"totp_code_length": 2},
        {"totp_code_length": 9},
        {"totp_skew": 3},
        {"code_length": 11},
        {"push_apn_credential_sid": "XX" + "1" * 32},
        {"default_template_sid": "HJ123"},
        {"whatsapp_msg_service_sid": CR},
        {"passkeys_authenticator_attachment": "usb"},
        {"passkeys_user_verification": "always"},
        {"friendly_name": "x" * 31},
        {"friendly_name": ""},
    ],
)
def test_settings_outside_their_documented_range_are_refused_and_change_nothing(
    twilio: Client, setting: dict[str, Any]
) -> None:
    created = twilio.verify.v2.services.create(friendly_name="Steady", totp_skew=1)
    service = twilio.verify.v2.services(created.sid)
    error = twilio_error(lambda: service.update(lookup_enabled=True, **setting))
    assert (error.status, error.code) == (400, 60200)
    after = service.fetch()
    assert (after.friendly_name, after.lookup_enabled, after.totp["skew"]) == ("Steady", False, 1)
    assert after.date_updated == created.date_updated
    if "friendly_name" not in setting:
        refused = twilio_error(
            lambda: twilio.verify.v2.services.create(friendly_name="Refused", **setting)
        )
        assert (refused.status, refused.code) == (400, 60200)


def test_the_list_pages_through_the_accounts_services(own_sandbox: ThreadedServer) -> None:
    twilio = sdk_client(own_sandbox.url)
    made = [twilio.verify.v2.services.create(friendly_name=f"Shop {n}").sid for n in range(7)]
    everything = [DEFAULT_SERVICE_SID, *made]
    # The SDK follows meta.next_page_url, an absolute URL on the sandbox's own base.
    assert [s.sid for s in twilio.verify.v2.services.list(page_size=3)] == everything
    first = twilio.verify.v2.services.page(page_size=3)
    assert [s.sid for s in first] == everything[:3] and first.previous_page_url is None
    assert first.next_page_url.startswith(f"{own_sandbox.url}/v2/Services?PageSize=3&Page=1")
    second = first.next_page()
    assert [s.sid for s in second] == everything[3:6]
    # Deleting a listed service between pages neither repeats nor skips one.
    twilio.verify.v2.services(made[5]).delete()
    third = second.next_page()
    assert [s.sid for s in third] == everything[7:] and third.next_page_url is None
    assert [s.sid for s in third.previous_page()] == everything[3:6]
    assert [s.sid for s in second.previous_page()] == everything[:3]
    checked(twilio)


def test_a_page_size_beyond_the_documented_maximum_is_refused(
    twilio: Client, recorder: RecordingHttpClient
) -> None:
    with pytest.raises(TwilioException, match="Unable to fetch page"):
        twilio.verify.v2.services.page(page_size=1001)
    assert (recorder.exchanges[-1].status, recorder.exchanges[-1].body["code"]) == (400, 60200)
    assert list(twilio.verify.v2.services.page(page_size=1000))
    assert recorder.exchanges[-1].body["meta"]["page_size"] == 1000


def test_delete_takes_the_service_and_everything_under_it(
    twilio: Client, sandbox: SandboxClient, recorder: RecordingHttpClient
) -> None:
    created = twilio.verify.v2.services.create(friendly_name="Short lived")
    service = twilio.verify.v2.services(created.sid)
    to = random_phone()
    service.verifications.create(to=to, channel="sms")
    assert service.delete() is True
    assert (recorder.exchanges[-1].status, recorder.exchanges[-1].body) == (204, None)
    for call in (
        service.fetch,
        service.delete,
        lambda: service.verifications(to).fetch(),
        lambda: service.verification_checks.create(to=to, code=sandbox.latest_code(to)),
    ):
        assert twilio_error(call).code == 20404
    assert created.sid not in {s.sid for s in twilio.verify.v2.services.list()}


def test_services_outlive_a_restart_with_a_state_file(tmp_path: Path) -> None:
    """Started three times on one file: the services come back, verifications do not, and
    another account's services stay invisible to it."""
    state = tmp_path / "sandbox-state.json"
    to = random_phone()
    with _sandbox_process(tmp_path, state) as url:
        twilio = sdk_client(url)
        created = twilio.verify.v2.services.create(friendly_name="Kept", custom_code_enabled=True)
        twilio.verify.v2.services(created.sid).verifications.create(to=to, channel="sms")
        checked(twilio)
    saved = json.loads(state.read_text())
    assert {s["sid"] for s in saved["services"]} == {DEFAULT_SERVICE_SID, created.sid}
    assert to not in state.read_text(), "only services are kept"

    other = {"TWILIO_ACCOUNT_SID": "AC" + "9" * 32, "TWILIO_AUTH_TOKEN": "another-token"}
    with _sandbox_process(tmp_path, state, **other) as url:
        twilio = sdk_client(url, other["TWILIO_ACCOUNT_SID"], other["TWILIO_AUTH_TOKEN"])
        assert twilio_error(lambda: twilio.verify.v2.services(created.sid).fetch()).code == 20404
        assert [s.sid for s in twilio.verify.v2.services.list()] == [DEFAULT_SERVICE_SID]
        checked(twilio)

    with _sandbox_process(tmp_path, state) as url:
        twilio = sdk_client(url)
        kept = twilio.verify.v2.services(created.sid).fetch()
        assert (kept.friendly_name, kept.custom_code_enabled) == ("Kept", True)
        assert kept.date_created == created.date_created
        error = twilio_error(
            lambda: twilio.verify.v2.services(created.sid).verifications(to).fetch()
        )
        assert error.code == 20404
        checked(twilio)
    assert not list(tmp_path.glob(".sandbox-state.json.*")), "no temporary file is left behind"


@contextlib.contextmanager
def _sandbox_process(log_dir: Path, state: Path, **env: str) -> Iterator[str]:
    """``twostep sandbox --state-file state`` as a process of its own."""
    port = free_port()
    process = ServiceProcess(
        "sandbox",
        ["sandbox", "--port", str(port), "--state-file", str(state)],
        base_env(**env),
        log_dir,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()
    assert "+1" not in process.log(), "the sandbox logged a phone number"


def test_a_reset_keeps_only_the_default_service_as_it_started(own_sandbox: ThreadedServer) -> None:
    twilio = sdk_client(own_sandbox.url)
    created = twilio.verify.v2.services.create(friendly_name="Gone after reset")
    twilio.verify.v2.services(DEFAULT_SERVICE_SID).update(friendly_name="Renamed", code_length=8)
    with SandboxClient(own_sandbox.url) as sandbox:
        sandbox.reset()
    assert twilio_error(lambda: twilio.verify.v2.services(created.sid).fetch()).code == 20404
    default = twilio.verify.v2.services(DEFAULT_SERVICE_SID).fetch()
    assert (default.friendly_name, default.code_length) == ("twostep sandbox", 6)
    checked(twilio)
