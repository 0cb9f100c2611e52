"""The Twilio adapter on the real SDK, against the sandbox over HTTP: answers and error classes."""

from __future__ import annotations

import uuid

import pytest

from shared.errors import (
    ErrorCode,
    ProviderFinalError,
    ProviderPermanentError,
    ProviderTransientError,
)
from shared.kit.settings import SANDBOX_SERVICE_SID, Settings
from shared.kit.startup import Misconfigured
from shared.verifications.domain import Channel
from shared.verify.twilio import TwilioVerifyClient
from tests.support import SandboxClient, free_port, random_phone

# The sandbox's built-in service, the default tenant's in development.
S = SANDBOX_SERVICE_SID


@pytest.fixture
def client(twilio_adapter: TwilioVerifyClient) -> TwilioVerifyClient:
    return twilio_adapter


async def test_start_find_and_check(client: TwilioVerifyClient, sandbox: SandboxClient) -> None:
    to = random_phone()
    started = await client.start_verification(S, to, Channel.SMS, "en")
    assert (
        started.sid.startswith("VE") and started.status == "pending" and started.send_attempts == 1
    )
    assert started.last_sent_at is not None and started.created_at.tzinfo is not None

    again = await client.start_verification(S, to, Channel.CALL, None)
    assert (again.sid, again.send_attempts, again.channel) == (started.sid, 2, "call")

    found = await client.find_pending_verification(S, to)
    assert found is not None and found.sid == started.sid

    code = sandbox.latest_code(to)
    wrong = "000000" if code != "000000" else "111111"
    assert (await client.check_code(S, started.sid, wrong)).approved is False
    assert (await client.check_code(S, started.sid, code)).approved is True
    assert await client.find_pending_verification(S, to) is None
    with pytest.raises(ProviderFinalError) as gone:
        await client.check_code(S, started.sid, code)
    assert (gone.value.provider_code, gone.value.reason) == (20404, ErrorCode.VERIFICATION_EXPIRED)


async def test_a_canceled_verification_is_gone_and_the_next_one_starts_afresh(
    client: TwilioVerifyClient, sandbox: SandboxClient
) -> None:
    to = random_phone()
    first = await client.start_verification(S, to, Channel.SMS, None)
    await client.cancel_verification(S, first.sid)
    await client.cancel_verification(S, first.sid)  # twice is fine: it is gone either way
    assert await client.find_pending_verification(S, to) is None
    second = await client.start_verification(S, to, Channel.SMS, None)
    assert second.sid != first.sid and second.send_attempts == 1
    assert (await client.check_code(S, second.sid, sandbox.latest_code(to))).approved


async def test_twilios_record_says_which_verification_was_approved(
    client: TwilioVerifyClient, sandbox: SandboxClient
) -> None:
    """The Attempts API outlives the verification: after an approval and after a cancel alike
    the verification is gone, and only the record tells the two apart."""
    approved_to, canceled_to = random_phone(), random_phone()
    approved = await client.start_verification(S, approved_to, Channel.SMS, None)
    canceled = await client.start_verification(S, canceled_to, Channel.SMS, None)
    assert not await client.was_approved(S, approved.sid)
    assert (await client.check_code(S, approved.sid, sandbox.latest_code(approved_to))).approved
    await client.cancel_verification(S, canceled.sid)
    assert await client.was_approved(S, approved.sid)
    assert not await client.was_approved(S, canceled.sid)


async def test_each_tenant_gets_a_service_of_its_own(
    client: TwilioVerifyClient, sandbox: SandboxClient
) -> None:
    made = await client.create_service("Lantern", 6)
    assert made.sid != S and (made.friendly_name, made.code_length) == ("Lantern", 6)
    assert await client.fetch_service(made.sid) == made
    to = random_phone()
    mine = await client.start_verification(made.sid, to, Channel.SMS, None)
    default = await client.start_verification(S, to, Channel.SMS, None)
    assert mine.sid != default.sid, "one number, two services: two verifications"
    codes = {message["service_sid"]: message for message in sandbox.messages(to)}
    assert "Lantern" in codes[made.sid]["body"]
    with pytest.raises(ProviderFinalError) as unknown:
        await client.fetch_service("VA" + "9" * 32)
    assert unknown.value.provider_code == 20404


async def test_lookup_tells_line_types_and_sim_swaps(client: TwilioVerifyClient) -> None:
    mobile = await client.look_up(random_phone(), line_type=True, sim_swap=True)
    assert (mobile.line_type, mobile.swapped_in_period) == ("mobile", False)
    voip = await client.look_up("+14155550301", line_type=True, sim_swap=False)
    assert voip.line_type == "nonFixedVoip" and voip.swapped_in_period is None
    swapped = await client.look_up("+14155550401", line_type=False, sim_swap=True)
    assert swapped.swapped_in_period is True and swapped.last_sim_swap_at is not None


async def test_a_number_with_nothing_pending_is_not_found(client: TwilioVerifyClient) -> None:
    assert await client.find_pending_verification(S, random_phone()) is None


@pytest.mark.parametrize(
    ("to", "code", "reason"),
    [
        ("+14155550205", 60205, ErrorCode.LANDLINE_NOT_SUPPORTED),
        ("+14155550410", 60410, ErrorCode.FRAUD_BLOCKED),
        ("+14155550605", 60605, ErrorCode.COUNTRY_BLOCKED),
    ],
)
async def test_refused_numbers_are_permanent_errors(
    client: TwilioVerifyClient, to: str, code: int, reason: ErrorCode
) -> None:
    with pytest.raises(ProviderPermanentError) as refused:
        await client.start_verification(S, to, Channel.SMS, None)
    assert (refused.value.provider_code, refused.value.reason) == (code, reason)
    assert to not in str(refused.value)


async def test_email_goes_through_a_service_with_an_email_integration_only(
    client: TwilioVerifyClient,
) -> None:
    address = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    sent = await client.start_verification(S, address, Channel.EMAIL, None)
    assert sent.channel == "email"
    # A service made through the API has none, as at Twilio (60217): the send fails for good.
    # No random suffix: a service's name holds at most 4 digits, at Twilio as in the sandbox.
    bare = await client.create_service("bare", 6)
    with pytest.raises(ProviderPermanentError) as refused:
        await client.start_verification(bare.sid, address, Channel.EMAIL, None)
    assert (refused.value.provider_code, refused.value.reason) == (
        60217,
        ErrorCode.CHANNEL_NOT_CONFIGURED,
    )
    assert address not in str(refused.value)


async def test_injected_failures_are_transient(
    client: TwilioVerifyClient, sandbox: SandboxClient
) -> None:
    sandbox.set_faults(error_rate=1.0, error_status=503)
    with pytest.raises(ProviderTransientError) as unavailable:
        await client.start_verification(S, random_phone(), Channel.SMS, None)
    assert (unavailable.value.status, unavailable.value.ambiguous) == (503, False)

    sandbox.set_faults(throttle_rate=1.0)
    with pytest.raises(ProviderTransientError) as throttled:
        await client.start_verification(S, random_phone(), Channel.SMS, None)
    assert (throttled.value.provider_code, throttled.value.ambiguous) == (20429, False)

    sandbox.set_faults(timeout_rate=1.0, hang_seconds=3)
    to = random_phone()
    with pytest.raises(ProviderTransientError) as hung:
        await client.start_verification(S, to, Channel.SMS, None)
    assert hung.value.ambiguous is True
    sandbox.clear_faults()
    assert await client.find_pending_verification(S, to) is not None, (
        "the hung request was processed"
    )


async def test_an_unreachable_provider_is_transient_and_not_ambiguous() -> None:
    adapter = TwilioVerifyClient(Settings(twilio_base_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(ProviderTransientError) as refused:
        await adapter.start_verification(S, random_phone(), Channel.SMS, None)
    assert refused.value.ambiguous is False
    await adapter.close()


def test_without_credentials_or_sandbox_the_adapter_refuses_to_start() -> None:
    with pytest.raises(Misconfigured, match="no Twilio credentials"):
        TwilioVerifyClient(Settings())


def test_real_credentials_never_go_to_another_base_url() -> None:
    settings = Settings(
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="a-real-looking-token",
        twilio_verify_service_sid="VA" + "1" * 32,
        twilio_base_url="http://127.0.0.1:8765",
    )
    with pytest.raises(Misconfigured, match="never go to"):
        TwilioVerifyClient(settings)
