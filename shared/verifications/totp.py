"""Authenticator apps (TOTP): a verification whose code the user's app makes, checked through
Twilio Verify's Factors API. Nothing is sent, so such a verification is ``pending`` from the
start and has no send job; its checks are jobs like any other.

The factor's secret is made here and shown to the user once (the ``otpauth://`` URI), never
stored in SQL, a log line or a task message: until the enrolment's first code it waits in the
code stash (encrypted, for the enrolment's lifetime), then the worker hands it to Twilio when it
makes the factor there (``Binding.Secret``) and drops it. Twilio accepts a TOTP code again
within its validity; twostep does not (ASVS 2.8.4): an approved code is claimed once, for as
long as it could be valid.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import pyotp

from shared.kit.crypto import Keyring
from shared.kit.settings import Settings
from shared.tenants.models import ApiKey
from shared.unit_of_work import UnitOfWork
from shared.verifications.domain import Channel, Purpose, VerificationStatus
from shared.verifications.models import Verification

# Twilio's defaults for a TOTP factor (its config when none is given): the URI says the same.
TIME_STEP_SECONDS = 30
CODE_DIGITS = 6
SKEW_STEPS = 1
# 160 bits, RFC 4226's recommended length: 32 base32 characters.
_SECRET_CHARACTERS = 32


@dataclass(frozen=True, slots=True)
class NewSecret:
    secret: str
    otpauth_uri: str


def new_secret(issuer: str, account: str) -> NewSecret:
    """A fresh secret and its Google Authenticator key URI (shown as a QR code)."""
    secret = pyotp.random_base32(_SECRET_CHARACTERS)
    uri = pyotp.TOTP(secret, digits=CODE_DIGITS, interval=TIME_STEP_SECONDS).provisioning_uri(
        name=account, issuer_name=issuer
    )
    return NewSecret(secret, uri)


async def remember_factor(uow: UnitOfWork, verification_id: uuid.UUID, factor_sid: str) -> None:
    """An enrolment's factor was made at Twilio (an app's at its first code, a passkey's with
    its options): the verification and the factor are reached by its SID from now on."""
    await uow.verifications.set_destination(verification_id, factor_sid)
    await uow.factors.set_destination_of_enrollment(verification_id, factor_sid)


def entity_of(keyring: Keyring, tenant_id: uuid.UUID, user_id: str) -> str:
    """The user's Twilio entity: a keyed hash (Twilio asks for no personal data there, 8 to 64
    characters), the same every time, another in every tenant."""
    return keyring.blind_index("totp-entity", str(tenant_id), user_id)[:64]


def code_use(keyring: Keyring, factor_sid: str, code: str) -> str:
    """The name under which an approved code is claimed: no code in clear in Redis."""
    return keyring.blind_index("totp-code", factor_sid, code)


# An approved code could be accepted again while any step within the skew still makes it.
CODE_VALID_SECONDS = (2 * SKEW_STEPS + 1) * TIME_STEP_SECONDS


def authenticator_verification(
    verification_id: uuid.UUID,
    api_key: ApiKey,
    request: AuthenticatorRequest,
    now: datetime,
    settings: Settings,
) -> Verification:
    """A verification of an app's code (``pending`` at once, to be checked, never sent) or of a
    passkey's signature (``queued`` until a worker has its options from Twilio). Its destination
    is the Twilio factor's SID, or empty while the factor is not made yet (an enrolment)."""
    return Verification(
        id=verification_id,
        tenant_id=api_key.tenant_id,
        status=(
            VerificationStatus.QUEUED
            if request.channel.starts_at_provider
            else VerificationStatus.PENDING
        ),
        purpose=request.purpose,
        channel=request.channel,
        destination=request.factor_sid or "",
        destination_lookup=None,
        destination_region=None,
        user_id=request.user_id,
        client_ip=request.client_ip,
        api_key_id=api_key.id,
        send_attempts=0,
        check_attempts=0,
        provider_open=False,
        provider_attempts=0,
        enqueue_count=1 if request.channel.starts_at_provider else 0,
        next_attempt_at=now + settings.requeue_after,
        expires_at=now + settings.code_lifetime,
        created_at=now,
        updated_at=now,
        deadline_at=now + settings.send_deadline,
    )


@dataclass(frozen=True, slots=True)
class AuthenticatorRequest:
    """An app's code (channel totp) or a passkey's signature (channel passkey) to verify."""

    user_id: str
    purpose: Purpose
    factor_sid: str | None = None  # None: an enrolment, whose factor is made at Twilio later
    client_ip: str | None = None
    channel: Channel = Channel.TOTP
