"""The Twilio adapter's passkey calls, through the real ``twilio`` SDK against the sandbox, which
verifies WebAuthn for real: a passkey registered and used by a software authenticator; refused
and misdirected answers are rejected checks, never provider failures."""

from __future__ import annotations

import pytest

from sandbox.authenticator import Authenticator
from shared.errors import ProviderPermanentError
from shared.verify.port import RelyingParty
from shared.verify.twilio import TwilioVerifyClient

ORIGIN = "https://login.example.com"
SITE = RelyingParty(id="example.com", name="Lantern", origins=(ORIGIN,))


@pytest.fixture
def client(twilio_adapter: TwilioVerifyClient) -> TwilioVerifyClient:
    return twilio_adapter


@pytest.fixture
async def service(client: TwilioVerifyClient) -> str:
    made = await client.create_service("passkeys", 6)
    await client.configure_passkeys(made.sid, SITE)
    return made.sid


async def _registered(
    client: TwilioVerifyClient, service: str, device: Authenticator, identity: str
) -> str:
    factor = await client.create_passkey_factor(service, identity, "Ada's laptop")
    assert factor.sid.startswith("YF") and factor.options["rp"]["id"] == "example.com"
    assert factor.options["authenticatorSelection"]["userVerification"] == "required"
    attestation = device.register(factor.options, ORIGIN)
    assert (await client.verify_passkey_factor(service, factor.sid, attestation)).approved
    return factor.sid


async def test_a_passkey_registered_then_signing_in(
    client: TwilioVerifyClient, service: str
) -> None:
    device, identity = Authenticator(attestation="packed"), "entity-ada-00000001"
    factor = await _registered(client, service, device, identity)
    challenge = await client.create_passkey_challenge(service, identity, factor)
    assertion = device.sign_in(challenge.options, ORIGIN)
    assert (await client.approve_passkey_challenge(service, challenge.sid, assertion)).approved


async def test_refused_and_misdirected_answers_are_rejected_checks(
    client: TwilioVerifyClient, service: str
) -> None:
    device, identity = Authenticator(), "entity-ada-00000002"
    pending = await client.create_passkey_factor(service, identity, "Ada's phone")
    phished = device.register(pending.options, "https://evil.test")
    assert not (await client.verify_passkey_factor(service, pending.sid, phished)).approved
    factor = await _registered(client, service, device, identity)

    first = await client.create_passkey_challenge(service, identity, factor)
    second = await client.create_passkey_challenge(service, identity, factor)
    wrong_origin = device.sign_in(first.options, "https://evil.test")
    assert not (await client.approve_passkey_challenge(service, first.sid, wrong_origin)).approved
    # Signed for the second challenge, handed in for the first: the first is not approved.
    other = device.sign_in(second.options, ORIGIN)
    assert not (await client.approve_passkey_challenge(service, first.sid, other)).approved
    right = device.sign_in(first.options, ORIGIN)
    assert (await client.approve_passkey_challenge(service, first.sid, right)).approved


async def test_a_service_without_a_relying_party_is_a_provider_refusal(
    client: TwilioVerifyClient,
) -> None:
    bare = await client.create_service("no passkeys", 6)
    with pytest.raises(ProviderPermanentError) as refused:
        await client.create_passkey_factor(bare.sid, "entity-ada-00000003", "Ada's laptop")
    assert refused.value.provider_code == 60371
