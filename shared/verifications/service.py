"""Use cases at the API's edge: ask for a code, send it again, cancel, submit a code, read.

They consult the limits first, then write rows and buffer jobs on the unit of work; the boundary
commits, and the jobs go out after the commit. A refused request writes nothing and publishes
nothing. None of them waits for the provider, and none holds a transaction open across Redis:
what must be read before a limit is consulted is read outside the transaction (``uow.reads()``).
Every read names the caller's tenant: another tenant's id is not found, exactly as an unknown one.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from shared.audit.domain import EventType
from shared.errors import (
    ChannelMismatch,
    CheckAttemptsExhausted,
    CountryNotAllowed,
    InvalidInput,
    NotFound,
    TwostepError,
    VerificationNotPending,
)
from shared.kit.clock import Clock
from shared.kit.crypto import Keyring
from shared.kit.destinations import Destination, parse_destination
from shared.kit.jobs import Job
from shared.kit.lookups import destination_lookup
from shared.kit.network import normalise_ip
from shared.kit.settings import Settings
from shared.limits.ports import Guards, Guesser, Outcome, SendRequest
from shared.tenants.models import ApiKey
from shared.unit_of_work import Repositories, UnitOfWork
from shared.verifications.codes import CodeStash
from shared.verifications.domain import (
    OPEN_VERIFICATION_STATUSES,
    Channel,
    Purpose,
    VerificationStatus,
)
from shared.verifications.events import event_for, record_for
from shared.verifications.models import Verification, VerificationCheck
from shared.verifications.passkeys import stashed_answer
from shared.verifications.totp import AuthenticatorRequest, authenticator_verification
from shared.verifications.views import change_of

log = structlog.get_logger(__name__)

_CODE_SHAPE = re.compile(r"^[0-9A-Za-z]{4,10}$")
# What users type between a code's characters, as they read it out ("123 456", "123-456").
_TYPED_BETWEEN = re.compile(r"[ -]")


@dataclass(frozen=True, slots=True)
class VerificationRequest:
    to: str
    channel: Channel = Channel.SMS
    locale: str | None = None
    user_id: str | None = None
    client_ip: str | None = None
    purpose: Purpose = Purpose.STANDALONE


@dataclass(frozen=True)
class Verifications:
    """Built once per process; every method works in the caller's unit of work."""

    settings: Settings
    guards: Guards
    stash: CodeStash
    clock: Clock
    keyring: Keyring

    async def request(
        self, uow: UnitOfWork, api_key: ApiKey, request: VerificationRequest
    ) -> Verification:
        if not request.channel.sends_code:
            raise InvalidInput("an authenticator app's code is not sent: enrol the app instead")
        destination = self._allowed(
            parse_destination(request.to, email=request.channel.reaches_email)
        )
        client_ip = normalise_ip(request.client_ip) if request.client_ip else None
        verification_id = uuid.uuid4()
        # A locked-out guesser could not check the code: nothing is sent to them.
        await self.guards.lockout.check(
            Guesser.of(api_key.tenant_id, request.user_id, destination.address, client_ip)
        )
        await self.guards.sends.admit(
            SendRequest(
                tenant_id=api_key.tenant_id,
                api_key_id=api_key.id,
                destination=destination.address,
                region=destination.region,
                verification_id=verification_id,
                user_id=request.user_id,
                client_ip=client_ip,
            )
        )
        verification = self._new_verification(
            verification_id, destination, api_key, request, client_ip
        )
        requested = event_for(
            uow, EventType.VERIFICATION_REQUESTED, verification, channel=request.channel.value
        )
        await uow.verifications.insert_recorded(verification, requested)
        uow.enqueue_after_commit(Job.send_code(verification.id))
        log.info(
            "verification.requested",
            verification_id=str(verification.id),
            channel=request.channel.value,
            purpose=request.purpose.value,
        )
        return verification

    async def request_from_authenticator(
        self, uow: UnitOfWork, api_key: ApiKey, request: AuthenticatorRequest
    ) -> Verification:
        """A verification of an authenticator's answer — an app's code, a passkey's signature.
        An app's is ``pending`` at once and costs no call until it is checked; a passkey's is
        ``pending`` once a worker has Twilio's options for the browser, a call to Twilio that
        counts as a send does (per user, client address, key, and in all), though no message
        goes anywhere. Checked like any other."""
        await self.guards.lockout.check(
            Guesser.of(api_key.tenant_id, request.user_id, None, request.client_ip)
        )
        verification_id = uuid.uuid4()
        if request.channel.starts_at_provider:
            await self.guards.sends.admit(
                SendRequest.to_nobody(api_key, request.user_id, request.client_ip, verification_id)
            )
        verification = authenticator_verification(
            verification_id, api_key, request, self.clock.now(), self.settings
        )
        requested = event_for(
            uow, EventType.VERIFICATION_REQUESTED, verification, channel=request.channel.value
        )
        await uow.verifications.insert_recorded(verification, requested)
        if request.channel.starts_at_provider:
            uow.enqueue_after_commit(Job.send_code(verification.id))
        return verification

    def _allowed(self, destination: Destination) -> Destination:
        allowed, region = self.settings.allowed_countries, destination.region
        if allowed is not None and region is not None and region not in allowed:
            raise CountryNotAllowed(
                f"codes are not sent to numbers of {region} (allowed: {', '.join(sorted(allowed))})"
            )
        return destination

    def _new_verification(
        self,
        verification_id: uuid.UUID,
        destination: Destination,
        api_key: ApiKey,
        request: VerificationRequest,
        client_ip: str | None,
    ) -> Verification:
        now = self.clock.now()
        return Verification(
            id=verification_id,
            tenant_id=api_key.tenant_id,
            status=VerificationStatus.QUEUED,
            purpose=request.purpose,
            channel=request.channel,
            destination=destination.address,
            destination_lookup=destination_lookup(
                self.keyring, api_key.tenant_id, destination.address
            ),
            destination_region=destination.region,
            locale=request.locale,
            user_id=request.user_id,
            client_ip=client_ip,
            api_key_id=api_key.id,
            send_attempts=0,
            check_attempts=0,
            provider_open=False,
            provider_attempts=0,
            enqueue_count=1,
            next_attempt_at=now + self.settings.requeue_after,
            created_at=now,
            updated_at=now,
            deadline_at=now + self.settings.send_deadline,
        )

    async def get(
        self, rows: Repositories, tenant_id: uuid.UUID, verification_id: uuid.UUID
    ) -> Verification:
        verification = await rows.verifications.get_of_tenant(tenant_id, verification_id)
        if verification is None:
            raise NotFound(f"no verification {verification_id}")
        return verification

    async def resend(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        verification_id: uuid.UUID,
        channel: Channel | None = None,
    ) -> Verification:
        """Send a pending verification's code again — the same code, on its channel or another.

        A re-send already waiting for a worker is not doubled: the verification is answered as is.
        """
        async with uow.reads() as read:
            verification = await self.get(read, api_key.tenant_id, verification_id)
        if verification.status is not VerificationStatus.PENDING:
            raise _not_pending(verification)
        if not verification.channel.sends_code:
            raise ChannelMismatch(
                f"a {verification.channel.value} verification sends nothing: only a sent code "
                "can be sent again (start a new challenge instead)"
            )
        if channel is not None and channel.kind is not verification.channel.kind:
            raise ChannelMismatch(
                f"a code sent by {verification.channel.value} cannot be sent again by "
                f"{channel.value}: {_reachable_by(verification.channel)}"
            )
        if verification.resend_channel is not None:
            return verification
        # A locked-out guesser could not check the code: it is not sent again either.
        await self.guards.lockout.check(guesser_of(verification))
        await self.guards.sends.admit(_send_again(verification, api_key))
        channel = channel or verification.channel
        now = self.clock.now()
        resent = await uow.verifications.request_resend(
            verification_id,
            channel,
            now=now,
            deadline=now + self.settings.send_deadline,
            next_look=now + self.settings.requeue_after,
        )
        if resent is None:  # it ended meanwhile, or another re-send is already waiting
            current = await self.get(uow, api_key.tenant_id, verification_id)
            if current.status is not VerificationStatus.PENDING:
                raise _not_pending(current)
            return current
        await record_for(
            uow,
            EventType.VERIFICATION_RESEND_REQUESTED,
            verification,
            api_key_id=api_key.id,
            channel=channel.value,
        )
        uow.enqueue_after_commit(Job.send_code(verification_id))
        return resent

    async def cancel(
        self, uow: UnitOfWork, api_key: ApiKey, verification_id: uuid.UUID
    ) -> Verification:
        """End a verification that is not over yet; canceling a canceled one changes nothing."""
        canceled = await uow.verifications.cancel(
            api_key.tenant_id, verification_id, self.clock.now()
        )
        if canceled is None:
            current = await self.get(uow, api_key.tenant_id, verification_id)
            if current.status is VerificationStatus.CANCELED:
                return current
            raise _not_pending(current)
        await record_for(uow, EventType.VERIFICATION_CANCELED, canceled, api_key_id=api_key.id)
        uow.notify_after_commit(change_of(canceled))
        if canceled.provider_open:
            # Over here, so over at Twilio too: a new code to the number starts afresh.
            uow.enqueue_after_commit(Job.close_verification(canceled.id))
        return canceled

    async def submit_check(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        verification_id: uuid.UUID,
        answer: str | dict[str, Any],
    ) -> VerificationCheck:
        """Accept a code (or, for a passkey, the browser's credential) for checking: the check
        reserves its failure in the lockout first (so parallel guesses cannot outrun it), the
        answer waits in the stash, the attempt is taken."""
        if isinstance(answer, str):
            answer = _TYPED_BETWEEN.sub("", answer.strip())
            if not _CODE_SHAPE.match(answer):
                raise InvalidInput("a code is 4 to 10 letters or digits")
        async with uow.reads() as read:
            verification = await self.get(read, api_key.tenant_id, verification_id)
        refusal = self._check_refusal(verification)
        if refusal is not None:
            raise refusal
        code = stashed_answer(verification, answer)
        check_id = uuid.uuid4()
        guesser = guesser_of(verification)
        ttl = int(self.settings.check_deadline_seconds) + 60
        try:
            # Together, in one round trip; the code is stashed before the row exists: a check
            # row never exists without its code.
            for outcome in await asyncio.gather(
                self.guards.lockout.reserve(guesser, str(check_id), ttl),
                self.stash.put(check_id, code, ttl_seconds=ttl),
                return_exceptions=True,  # both over before any undoing below
            ):
                if isinstance(outcome, BaseException):
                    raise outcome
            return await self._take_attempt(uow, verification, check_id)
        except BaseException:
            # No check was made: neither its code nor its reservation (if it was made) may
            # outlive it.
            await asyncio.gather(
                self.stash.discard(check_id),
                self.guards.lockout.settle(guesser, str(check_id), Outcome.VOID),
                return_exceptions=True,
            )
            raise

    async def _take_attempt(
        self, uow: UnitOfWork, verification: Verification, check_id: uuid.UUID
    ) -> VerificationCheck:
        now = self.clock.now()
        check = VerificationCheck.queued_for(
            verification,
            check_id,
            now,
            requeue_after=self.settings.requeue_after,
            deadline=self.settings.check_deadline,
        )
        if not await uow.checks.insert_taking_attempt(check, self.settings.max_check_attempts, now):
            current = await self.get(uow, verification.tenant_id, verification.id)
            refusal = self._check_refusal(current) or self._attempts_exhausted(current)
            await uow.rollback()
            raise refusal
        uow.enqueue_after_commit(Job.check_code(check.id))
        log.info("check.submitted", check_id=str(check.id), verification_id=str(verification.id))
        return check

    def _check_refusal(self, verification: Verification) -> TwostepError | None:
        if verification.status is VerificationStatus.MAX_ATTEMPTS_REACHED:
            return self._attempts_exhausted(verification)
        if verification.status is not VerificationStatus.PENDING:
            return _not_pending(verification)
        return None

    def _attempts_exhausted(self, verification: Verification) -> CheckAttemptsExhausted:
        # Twilio's advice for its 60202: wait until the verification expires, or start a new one.
        now = self.clock.now()
        until_expiry = (verification.expires_at or now) - now
        return CheckAttemptsExhausted(
            f"all {self.settings.max_check_attempts} checks of verification {verification.id} "
            "are used; start a new verification",
            limit="checks_per_verification",
            retry_after=int(until_expiry.total_seconds()),
        )

    async def get_check(
        self,
        rows: Repositories,
        tenant_id: uuid.UUID,
        verification_id: uuid.UUID,
        check_id: uuid.UUID,
    ) -> VerificationCheck:
        check = await rows.checks.get_for_verification(tenant_id, verification_id, check_id)
        if check is None:
            raise NotFound(f"no check {check_id} on verification {verification_id}")
        return check


def _send_again(verification: Verification, api_key: ApiKey) -> SendRequest:
    """A re-send counts as a send, by the key that asks for it."""
    return SendRequest(
        tenant_id=verification.tenant_id,
        api_key_id=api_key.id,
        destination=verification.destination,
        region=verification.destination_region,
        verification_id=verification.id,
        user_id=verification.user_id,
        client_ip=verification.client_ip,
    )


def guesser_of(verification: Verification) -> Guesser:
    """A check of this verification guesses for its user; without one, for its number and the
    client address that asked for it."""
    return Guesser.of(
        verification.tenant_id,
        verification.user_id,
        verification.destination,
        verification.client_ip,
    )


def _reachable_by(channel: Channel) -> str:
    """The channels a verification's destination can be reached by, for a refusal's words."""
    return f"its {channel.kind.value} takes {', '.join(sorted(channel.of_kind()))}"


def _not_pending(verification: Verification) -> VerificationNotPending:
    said = f"verification {verification.id} is {verification.status.value}, not pending"
    if verification.status in OPEN_VERIFICATION_STATUSES:
        # Not sent yet: it will be, in a moment.
        said += f": wait until it is (GET /v1/verifications/{verification.id}?wait=30)"
    return VerificationNotPending(said)
