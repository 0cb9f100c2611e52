"""The Twilio adapter on the real SDK, against the sandbox over HTTP: answers and error classes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.domain import Channel, ErrorCode
from shared.errors import ProviderFinalError, ProviderPermanentError, ProviderTransientError
from shared.settings import Settings
from shared.startup import Misconfigured
from shared.verify.twilio import TwilioVerifyClient
from tests.support import SandboxClient, free_port, random_phone


@pytest.fixture
async def client(sandbox: SandboxClient) -> AsyncIterator[TwilioVerifyClient]:
    adapter = TwilioVerifyClient(
        Settings(twilio_base_url=sandbox.url, twilio_read_timeout_seconds=1.0, worker_concurrency=2)
    )
    yield adapter
    await adapter.close()


async def test_start_find_and_check(client: TwilioVerifyClient, sandbox: SandboxClient) -> None:
    to = random_phone()
    started = await client.start_verification(to, Channel.SMS, "en")
    assert (
        started.sid.startswith("VE") and started.status == "pending" and started.send_attempts == 1
    )
    assert started.last_sent_at is not None and started.created_at.tzinfo is not None

    again = await client.start_verification(to, Channel.CALL, None)
    assert (again.sid, again.send_attempts, again.channel) == (started.sid, 2, "call")

    found = await client.find_pending_verification(to)
    assert found is not None and found.sid == started.sid

    code = sandbox.latest_code(to)
    wrong = "000000" if code != "000000" else "111111"
    assert (await client.check_code(started.sid, wrong)).approved is False
    assert (await client.check_code(started.sid, code)).approved is True
    assert await client.find_pending_verification(to) is None
    with pytest.raises(ProviderFinalError) as gone:
        await client.check_code(started.sid, code)
    assert (gone.value.provider_code, gone.value.reason) == (20404, ErrorCode.VERIFICATION_EXPIRED)


async def test_a_canceled_verification_is_gone_and_the_next_one_starts_afresh(
    client: TwilioVerifyClient, sandbox: SandboxClient
) -> None:
    to = random_phone()
    first = await client.start_verification(to, Channel.SMS, None)
    await client.cancel_verification(first.sid)
    await client.cancel_verification(first.sid)  # twice is fine: it is gone either way
    assert await client.find_pending_verification(to) is None
    second = await client.start_verification(to, Channel.SMS, None)
    assert second.sid != first.sid and second.send_attempts == 1
    assert (await client.check_code(second.sid, sandbox.latest_code(to))).approved


async def test_a_number_with_nothing_pending_is_not_found(client: TwilioVerifyClient) -> None:
    assert await client.find_pending_verification(random_phone()) is None


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
        await client.start_verification(to, Channel.SMS, None)
    assert (refused.value.provider_code, refused.value.reason) == (code, reason)
    assert to not in str(refused.value)


async def test_injected_failures_are_transient(
    client: TwilioVerifyClient, sandbox: SandboxClient
) -> None:
    sandbox.set_faults(error_rate=1.0, error_status=503)
    with pytest.raises(ProviderTransientError) as unavailable:
        await client.start_verification(random_phone(), Channel.SMS, None)
    assert (unavailable.value.status, unavailable.value.ambiguous) == (503, False)

    sandbox.set_faults(throttle_rate=1.0)
    with pytest.raises(ProviderTransientError) as throttled:
        await client.start_verification(random_phone(), Channel.SMS, None)
    assert (throttled.value.provider_code, throttled.value.ambiguous) == (20429, False)

    sandbox.set_faults(timeout_rate=1.0, hang_seconds=3)
    to = random_phone()
    with pytest.raises(ProviderTransientError) as hung:
        await client.start_verification(to, Channel.SMS, None)
    assert hung.value.ambiguous is True
    sandbox.clear_faults()
    assert await client.find_pending_verification(to) is not None, "the hung request was processed"


async def test_an_unreachable_provider_is_transient_and_not_ambiguous() -> None:
    adapter = TwilioVerifyClient(Settings(twilio_base_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(ProviderTransientError) as refused:
        await adapter.start_verification(random_phone(), Channel.SMS, None)
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
