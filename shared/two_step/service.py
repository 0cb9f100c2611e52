"""Two-step authentication for a login server's users (docs/two-step.md: enrolment and login).

Enrolment: a phone or email address is stored *unverified* and a verification starts; only its
approval verifies the factor and turns 2SA on, so a typo never locks anyone out. A new phone
replaces the user's old phones (a new address their old addresses) only once it is verified
itself. An enrolment answers the same whether or not the destination is enrolled elsewhere; one
verified for another user of the tenant fails only at approval, as ``factor.enrollment_failed``,
so nobody learns which phones or addresses are enrolled. Login: a challenge is a verification to
one of the user's verified factors (the one named, else the preferred: ``choice``); the decision is
the verification's, approved only after an approved check. Recovery codes are ``recovery.py``'s.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from shared.audit import service as audit
from shared.audit.domain import EventType
from shared.audit.models import Event
from shared.audit.service import Subject
from shared.errors import (
    ChannelMismatch,
    InvalidInput,
    NotFound,
    NoVerifiedFactor,
    PasskeysNotSetUp,
)
from shared.kit.crypto import Keyring
from shared.kit.destinations import Destination, parse_destination
from shared.kit.jobs import Job
from shared.kit.lookups import destination_lookup
from shared.kit.network import normalise_ip
from shared.limits.ports import Guesser, SendRequest
from shared.tenants.models import ApiKey
from shared.tenants.passkeys import relying_party_of
from shared.two_step.choice import Choice, LoginChallenge, choose, refuse_losing_the_last_strong
from shared.two_step.domain import DisabledReason, FactorStatus
from shared.two_step.models import Factor
from shared.two_step.records import announce_factor, record_factor
from shared.two_step.users import validate_user_id
from shared.unit_of_work import UnitOfWork
from shared.verifications.domain import Channel, Purpose
from shared.verifications.models import Verification
from shared.verifications.service import VerificationRequest, Verifications
from shared.verifications.totp import AuthenticatorRequest, new_secret
from shared.verifications.views import change_of
from shared.webhooks.domain import WebhookEvent
from shared.webhooks.outbox import announce


@dataclass(frozen=True, slots=True)
class FactorList:
    user_id: str
    two_step_enabled: bool
    factors: Sequence[Factor]


@dataclass(frozen=True, slots=True)
class Enrollment:
    """A phone (``channel`` sms, call or whatsapp) or an email address (channel email)."""

    phone: str | None = None
    email: str | None = None
    channel: Channel | None = None  # default: sms for a phone, email for an address
    replace_existing: bool = True
    client_ip: str | None = None

    def destination(self) -> tuple[Destination, Channel]:
        """Where the factor's codes go, and by which channel; refuses what does not fit."""
        if (self.phone is None) == (self.email is None):
            raise InvalidInput("name either a phone or an email, not both")
        if self.email is not None:
            channel = self.channel or Channel.EMAIL
            if not channel.reaches_email:
                raise InvalidInput(f"an email address takes channel email, not {channel.value}")
            return parse_destination(self.email, email=True), channel
        channel = self.channel or Channel.SMS
        if channel.reaches_email:
            raise InvalidInput("a phone takes channel sms, call or whatsapp, not email")
        return parse_destination(str(self.phone), email=False), channel


@dataclass(frozen=True, slots=True)
class AppEnrollment:
    """An authenticator app (TOTP) or a passkey. ``label``: the account name the app or the
    authenticator shows (default: the user id), beside the tenant's display name."""

    label: str | None = None
    replace_existing: bool = True
    client_ip: str | None = None


@dataclass(frozen=True)
class TwoStep:
    """Built once per process; every method works in the caller's unit of work, on the
    caller's tenant."""

    verifications: Verifications
    keyring: Keyring

    async def enroll(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str, enrollment: Enrollment
    ) -> tuple[Factor, Verification]:
        """Store the phone or address unverified and send it a code; approving that code
        verifies it."""
        validate_user_id(user_id)
        destination, channel = enrollment.destination()
        verification = await self.verifications.request(
            uow,
            api_key,
            VerificationRequest(
                to=destination.address,
                channel=channel,
                user_id=user_id,
                client_ip=enrollment.client_ip,
                purpose=Purpose.ENROLLMENT,
            ),
        )
        factor = Factor(
            id=uuid.uuid4(),
            tenant_id=api_key.tenant_id,
            user_id=user_id,
            destination=destination.address,
            destination_lookup=destination_lookup(
                self.keyring, api_key.tenant_id, destination.address
            ),
            destination_region=destination.region,
            channel=channel,
            status=FactorStatus.UNVERIFIED,
            enrollment_verification_id=verification.id,
            replaces_others=enrollment.replace_existing,
            created_at=verification.created_at,
            updated_at=verification.created_at,
        )
        uow.factors.add(factor)
        await record_factor(
            uow,
            EventType.FACTOR_ENROLLMENT_STARTED,
            factor,
            api_key.id,
            through=verification,
        )
        return factor, verification

    async def enroll_app(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str, enrollment: AppEnrollment
    ) -> tuple[Factor, Verification, str]:
        """An authenticator app: a new secret, answered once as its ``otpauth://`` URI, and a
        verification ``pending`` at once; the app's first right code verifies the factor."""
        validate_user_id(user_id)
        tenant = await uow.tenants.get(api_key.tenant_id)
        issuer = tenant.display_name if tenant is not None else "twostep"
        made = new_secret(issuer, enrollment.label or user_id)
        factor, verification = await self._enroll_authenticator(
            uow, api_key, user_id, enrollment, Channel.TOTP
        )
        ttl = int(self.verifications.settings.code_lifetime_seconds) + 60
        await self.verifications.stash.put(verification.id, made.secret, ttl_seconds=ttl)
        return factor, verification, made.otpauth_uri

    async def enroll_passkey(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str, enrollment: AppEnrollment
    ) -> tuple[Factor, Verification]:
        """A passkey: a verification ``queued`` until a worker has Twilio's creation options
        for the browser (on the verification once ``pending``); the browser's attestation,
        checked like a code, verifies the factor."""
        validate_user_id(user_id)
        tenant = await uow.tenants.get(api_key.tenant_id)
        if tenant is None or relying_party_of(tenant) is None:
            raise PasskeysNotSetUp(
                "passkeys need the login site's domain and origins first: "
                "twostep tenants passkeys TENANT --rp-id DOMAIN --origin https://…"
            )
        return await self._enroll_authenticator(uow, api_key, user_id, enrollment, Channel.PASSKEY)

    async def _enroll_authenticator(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        user_id: str,
        enrollment: AppEnrollment,
        channel: Channel,
    ) -> tuple[Factor, Verification]:
        """An app's or a passkey's factor, unverified, and the verification that verifies it;
        its Twilio factor (its SID, the factor's destination) is made by a worker later."""
        verification = await self.verifications.request_from_authenticator(
            uow,
            api_key,
            AuthenticatorRequest(
                user_id, Purpose.ENROLLMENT, client_ip=enrollment.client_ip, channel=channel
            ),
        )
        factor = Factor(
            id=uuid.uuid4(),
            tenant_id=api_key.tenant_id,
            user_id=user_id,
            destination="",  # the factor's SID at Twilio, once made there
            # Unique per factor: an app or a passkey is nobody else's, never "in use by another
            # user".
            destination_lookup=self.keyring.blind_index(
                f"{channel.value}-factor", str(verification.id)
            ),
            destination_region=None,
            channel=channel,
            label=enrollment.label,
            status=FactorStatus.UNVERIFIED,
            enrollment_verification_id=verification.id,
            replaces_others=enrollment.replace_existing,
            created_at=verification.created_at,
            updated_at=verification.created_at,
        )
        uow.factors.add(factor)
        await record_factor(
            uow, EventType.FACTOR_ENROLLMENT_STARTED, factor, api_key.id, through=verification
        )
        return factor, verification

    async def list_factors(self, uow: UnitOfWork, api_key: ApiKey, user_id: str) -> FactorList:
        validate_user_id(user_id)
        factors = await uow.factors.list_for_user(api_key.tenant_id, user_id)
        enabled = any(factor.status is FactorStatus.VERIFIED for factor in factors)
        return FactorList(user_id, enabled, factors)

    async def disable_factor(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        user_id: str,
        factor_id: uuid.UUID,
        *,
        allow_downgrade: bool = False,
    ) -> Factor:
        """Disable a factor; a pending enrolment for it is canceled too. Disabling twice is
        fine; disabling the last strong one only when ``allow_downgrade``."""
        factor = await uow.factors.get(api_key.tenant_id, validate_user_id(user_id), factor_id)
        if factor is None:
            raise NotFound(f"no factor {factor_id} for this user")
        if factor.status is FactorStatus.DISABLED:
            return factor
        if not allow_downgrade:
            verified = await uow.factors.verified_for_user(
                factor.tenant_id, factor.user_id, for_update=True
            )
            refuse_losing_the_last_strong(factor, verified)
        now = self.verifications.clock.now()
        await uow.factors.disable(factor.id, now, DisabledReason.REMOVED)
        if factor.enrollment_verification_id is not None:
            canceled = await uow.verifications.cancel(
                factor.tenant_id, factor.enrollment_verification_id, now
            )
            if canceled is not None:
                uow.notify_after_commit(change_of(canceled))
                if canceled.provider_open:  # over here, so over at Twilio too
                    uow.enqueue_after_commit(Job.close_verification(canceled.id))
        await record_factor(uow, EventType.FACTOR_DISABLED, factor, api_key.id)
        if factor.status is FactorStatus.VERIFIED:
            announce_factor(
                uow,
                WebhookEvent.FACTOR_REMOVED,
                factor,
                FactorStatus.DISABLED,
                disabled_reason=DisabledReason.REMOVED,
            )
        return factor

    async def start_challenge(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        user_id: str,
        channel: Channel | None = None,
        client_ip: str | None = None,
        factor_id: uuid.UUID | None = None,
    ) -> LoginChallenge:
        """Send a login code to one of the user's verified factors — the one named, else the
        preferred one (``choice``) — on its channel or another that reaches it."""
        validate_user_id(user_id)
        choice = await self._choice(uow, api_key, user_id, channel, factor_id)
        ip = normalise_ip(client_ip) if client_ip else None
        if choice is None:
            # Asking whether a user has 2SA costs what a send costs: no free probing.
            await self.verifications.guards.sends.admit(SendRequest.to_nobody(api_key, user_id, ip))
            raise NoVerifiedFactor(
                "two-step authentication is not on for this user: no factor of theirs is "
                "verified. Enrol one (POST …/factors); GET …/factors shows each factor's status "
                "and, for a disabled one, its disabled_reason"
            )
        factor = choice.factor
        channel = channel or factor.channel
        if channel.kind is not factor.channel.kind:
            raise ChannelMismatch(
                f"factor {factor.id} is reached by {factor.channel.value}, not {channel.value}"
            )
        verification = await self._login_verification(uow, api_key, factor, channel, client_ip)
        await record_factor(
            uow, EventType.CHALLENGE_REQUESTED, factor, api_key.id, through=verification
        )
        return LoginChallenge(verification, choice)

    async def _login_verification(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        factor: Factor,
        channel: Channel,
        client_ip: str | None,
    ) -> Verification:
        """A code sent to the factor on ``channel``, or an authenticator's answer: an app's code
        or a passkey's signature (nothing sent)."""
        if channel.sends_code:
            request = VerificationRequest(
                to=factor.destination,
                channel=channel,
                user_id=factor.user_id,
                client_ip=client_ip,
                purpose=Purpose.LOGIN,
            )
            return await self.verifications.request(uow, api_key, request)
        ip = normalise_ip(client_ip) if client_ip else None
        answer = AuthenticatorRequest(
            factor.user_id, Purpose.LOGIN, factor.destination, ip, channel=channel
        )
        return await self.verifications.request_from_authenticator(uow, api_key, answer)

    async def _choice(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        user_id: str,
        channel: Channel | None,
        factor_id: uuid.UUID | None,
    ) -> Choice | None:
        """Which of the user's verified factors (``choice``); None: two-step is off."""
        async with uow.reads() as read:
            verified = await read.factors.verified_for_user(api_key.tenant_id, user_id)
            named = next((f for f in verified if f.id == factor_id), None)
            if factor_id is not None and named is None:
                named = await read.factors.get(api_key.tenant_id, user_id, factor_id)
                if named is None:
                    raise NotFound(f"no factor {factor_id} for this user")
        return choose(verified, channel, named)

    async def release_lockout(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        user_id: str | None,
        phone: str | None,
        client_ip: str | None = None,
        email: str | None = None,
    ) -> None:
        """Lift a user's, a number's, an email address's or a client address's lockout, hard
        ones included (an admin's decision)."""
        if user_id is None and phone is None and email is None and client_ip is None:
            raise InvalidInput("name a user_id, a phone, an email or a client_ip")
        destinations: list[str | None] = [
            parse_destination(raw, email=is_email).address
            for raw, is_email in ((phone, False), (email, True))
            if raw is not None
        ]
        ip = normalise_ip(client_ip) if client_ip else None
        user = validate_user_id(user_id) if user_id else None
        for destination in destinations or [None]:
            await self.verifications.guards.lockout.release(
                Guesser(api_key.tenant_id, user, destination, ip)
            )
            await audit.record(
                uow,
                EventType.LOCKOUT_RELEASED,
                Subject.of_request(api_key, user_id, destination=destination, client_ip=ip),
            )
        if user_id is not None:
            announce(uow, api_key.tenant_id, WebhookEvent.USER_UNLOCKED, user_id)

    async def list_events(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str, *, before: int | None, limit: int
    ) -> Sequence[tuple[Event, str | None]]:
        return await uow.events.page_for_user(
            api_key.tenant_id, validate_user_id(user_id), before=before, limit=limit
        )
