"""Passkeys (WebAuthn) through Twilio Verify Passkeys: a verification whose answer is the
browser's signature, not a code.

Twilio makes the options the browser signs, so a passkey's verification is started by a worker
like a code's send (never in the API's request): at enrolment a new, unverified factor's
creation options, at login a challenge of the factor and its request options. Both wait on the
verification row (``passkey_options``), which the login server reads once it is ``pending``.
The browser's answer (its ``PublicKeyCredential`` as JSON) is checked like a code: it waits
encrypted in the code stash under its check's id, never in SQL, a log line or a task message,
and a worker hands it to Twilio — the attestation verifies the factor, the assertion approves
the challenge. Twilio verifies the signature, its origin, its challenge and its counter; what
it refuses is a rejected check, counted in the lockout like a wrong code.

Twilio keeps a factor made for an enrolment that is never finished unverified; nothing is
canceled at Twilio when such a verification ends here.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from shared.errors import ChannelMismatch, InvalidInput
from shared.verifications.domain import Purpose
from shared.verifications.models import Verification
from shared.verifications.totp import entity_of
from shared.verify.port import ProviderCheck, ProviderVerification

if TYPE_CHECKING:  # the worker's side only; the API imports ``credential_text``
    from shared.verifications.provider_calls import ProviderCalls

# As much as a request body may hold (TWOSTEP_MAX_BODY_BYTES by default); a real credential
# is a few KB at most.
MAX_CREDENTIAL_CHARACTERS = 16 * 1024


async def begin_ceremony(
    calls: ProviderCalls, verification: Verification, service: str, label: str
) -> ProviderVerification:
    """The options the browser signs: a new factor's at enrolment (shown as ``label`` by the
    authenticator), a challenge of the verification's factor at login."""
    entity = entity_of(calls.keyring, verification.tenant_id, str(verification.user_id))
    verify = calls.verify
    if verification.purpose is Purpose.ENROLLMENT:
        made = await calls.through_gate(
            lambda: verify.create_passkey_factor(service, entity, label)
        )
    else:
        factor_sid = verification.destination
        made = await calls.through_gate(
            lambda: verify.create_passkey_challenge(service, entity, factor_sid)
        )
    now = calls.clock.now()
    return ProviderVerification(
        sid=made.sid,
        status="pending",
        channel="passkey",
        created_at=now,
        send_attempts=1,
        last_sent_at=now,
        passkey_options=made.options,
    )


async def check_credential(
    calls: ProviderCalls, verification: Verification, service: str, sealed: str
) -> ProviderCheck:
    """The browser's answer, as the user's check handed it over: an attestation verifies the
    enrolment's factor, an assertion approves the login's challenge."""
    credential = json.loads(sealed)
    verify = calls.verify
    sid = verification.provider_sid
    assert sid is not None  # pending: its ceremony began
    if verification.purpose is Purpose.ENROLLMENT:
        return await calls.through_gate(
            lambda: verify.verify_passkey_factor(service, sid, credential)
        )
    return await calls.through_gate(
        lambda: verify.approve_passkey_challenge(service, sid, credential)
    )


def credential_text(credential: dict[str, Any]) -> str:
    """The browser's credential as it waits in the stash; ``InvalidInput`` when it cannot be
    one."""
    text = json.dumps(credential, separators=(",", ":"))
    if len(text) > MAX_CREDENTIAL_CHARACTERS:
        raise InvalidInput(f"a credential is at most {MAX_CREDENTIAL_CHARACTERS} characters")
    return text


def stashed_answer(verification: Verification, answer: str | dict[str, Any]) -> str:
    """The answer as it waits for the worker, if it is the kind the verification takes: a
    passkey's the browser's credential, every other a code."""
    if verification.channel.takes_credential:
        if isinstance(answer, str):
            raise ChannelMismatch(
                "a passkey verification is checked with the browser's credential, not a code"
            )
        return credential_text(answer)
    if not isinstance(answer, str):
        raise ChannelMismatch(
            f"a {verification.channel.value} verification is checked with a code, not a credential"
        )
    return answer
