"""The Verify ports: what the core needs from a one-time-code provider.

The Twilio adapter (``shared.verify.twilio``) implements them against Twilio Verify v2 and
Lookup v2, or the sandbox; tests use ``tests.fakes.FakeVerifyClient``. Every method raises only
``shared.errors.ProviderError`` subclasses. Calls are coroutines: a worker keeps hundreds in
flight on one event loop.

Every verification lives in a Verify *service*: each tenant sends through its own, so that no
code, verification or limit of one tenant's is another's (``service`` below is its SID).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ProviderVerification:
    sid: str
    status: str  # the provider's word: pending, approved, canceled, ...
    channel: str
    created_at: datetime
    send_attempts: int
    last_sent_at: datetime | None
    # A passkey's ceremony (a factor or a challenge SID above): its WebAuthn options for the
    # browser. None for a code.
    passkey_options: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ProviderCheck:
    approved: bool


@dataclass(frozen=True, slots=True)
class ProviderService:
    sid: str
    friendly_name: str
    code_length: int


@dataclass(frozen=True, slots=True)
class LineFacts:
    """What Lookup says of a number. ``None``: not asked, or the carrier did not say."""

    line_type: str | None = None
    # When its SIM last changed, if the carrier said; else whether it changed within the
    # provider's own period (``swapped_in_period``).
    last_sim_swap_at: datetime | None = None
    swapped_in_period: bool | None = None


class VerifyClient(Protocol):
    async def start_verification(
        self, service: str, to: str, channel: str, locale: str | None
    ) -> ProviderVerification:
        """Ask the provider to send a code to ``to`` (E.164) on ``channel`` (Twilio's word:
        sms, call, email, whatsapp). Sending again to a number with a
        pending verification re-sends the same code on the same verification."""
        ...

    async def find_pending_verification(self, service: str, to: str) -> ProviderVerification | None:
        """The provider's pending verification for ``to``, or None when it has none."""
        ...

    async def check_code(self, service: str, verification_sid: str, code: str) -> ProviderCheck:
        """Check ``code`` against a pending verification. A wrong code is ``approved=False``."""
        ...

    async def cancel_verification(self, service: str, verification_sid: str) -> None:
        """End a pending verification, so that the next one to its number starts afresh
        instead of re-sending its code with its checks used up. One already over is fine."""
        ...

    async def was_approved(self, service: str, verification_sid: str) -> bool:
        """From the provider's record of its sends (Twilio's Verify Attempts API), whether the
        verification was approved: the word that settles a check whose answer was lost."""
        ...

    async def close(self) -> None: ...


class TotpFactors(Protocol):
    """Authenticator apps through Twilio Verify's Factors API: a factor per user (its *entity*,
    ``identity``, never personal data) made with the secret twostep showed the user once."""

    async def create_totp_factor(
        self, service: str, identity: str, friendly_name: str, secret: str
    ) -> str:
        """Make an unverified TOTP factor with ``secret`` (base32); its SID."""
        ...

    async def verify_totp_factor(
        self, service: str, identity: str, factor_sid: str, code: str
    ) -> ProviderCheck:
        """The factor's first right code verifies it; a wrong one leaves it unverified."""
        ...

    async def check_totp(
        self, service: str, identity: str, factor_sid: str, code: str
    ) -> ProviderCheck:
        """A challenge of a verified factor, answered with ``code`` at once."""
        ...


@dataclass(frozen=True, slots=True)
class RelyingParty:
    """The site passkeys belong to (WebAuthn's RP): its domain, its name as authenticators show
    it, and the exact origins its pages are served from."""

    id: str
    name: str
    origins: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PasskeyOptions:
    """A factor's or a challenge's SID and the WebAuthn options for the browser (the
    ``publicKey`` member of ``navigator.credentials.create()``'s or ``get()``'s argument, as
    JSON: base64url for binary fields)."""

    sid: str
    options: dict[str, Any]


class PasskeyFactors(Protocol):
    """Passkeys through Twilio Verify Passkeys: WebAuthn verified by Twilio, for a factor per
    passkey of a user's entity (``identity``, never personal data)."""

    async def configure_passkeys(self, service: str, relying_party: RelyingParty) -> None:
        """Set the service's relying party (a challenge needs it) and its criteria: a platform
        or roaming authenticator, a discoverable credential preferred, user verification
        required (a fingerprint, a face or a PIN)."""
        ...

    async def create_passkey_factor(
        self, service: str, identity: str, friendly_name: str
    ) -> PasskeyOptions:
        """An unverified factor and its creation options."""
        ...

    async def verify_passkey_factor(
        self, service: str, factor_sid: str, credential: dict[str, Any]
    ) -> ProviderCheck:
        """The browser's attestation (``PublicKeyCredential`` as JSON): approved when it
        verifies ``factor_sid``; one that does not verify is ``approved=False``."""
        ...

    async def create_passkey_challenge(
        self, service: str, identity: str, factor_sid: str
    ) -> PasskeyOptions:
        """A challenge of a verified passkey and its request options."""
        ...

    async def approve_passkey_challenge(
        self, service: str, challenge_sid: str, assertion: dict[str, Any]
    ) -> ProviderCheck:
        """The browser's assertion: approved only when it approves ``challenge_sid`` itself (one
        signed for another challenge approves nothing here); one that does not verify is
        ``approved=False``."""
        ...


class CodeProvider(VerifyClient, TotpFactors, PasskeyFactors, Protocol):
    """What sending and checking needs: sent codes' verifications, authenticator apps' factors
    and passkeys."""


class VerifyServices(Protocol):
    """Verify services themselves: one per tenant, made when the tenant is."""

    async def create_service(self, friendly_name: str, code_length: int) -> ProviderService: ...

    async def fetch_service(self, service: str) -> ProviderService: ...


class NumberLookup(Protocol):
    async def look_up(self, e164: str, *, line_type: bool, sim_swap: bool) -> LineFacts:
        """Ask the carrier's records (Twilio Lookup v2) for the facts named."""
        ...


class VerifyProvider(
    VerifyClient, TotpFactors, PasskeyFactors, VerifyServices, NumberLookup, Protocol
):
    """Every port, as one adapter (``TwilioVerifyClient``, or a fake) implements them: what a
    worker holds. ``default_service`` is the deployment's own Verify service."""

    default_service: str
