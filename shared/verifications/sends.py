"""Sending a verification's code: the first time, or again.

Twilio holds one pending verification per number and service, and answers a new verification to
a number that has one with that one — its code again, its checks already used. So before a
verification's first send, the tenant's earlier ones to the same number are *superseded*: ended
here and canceled at Twilio, so that one twostep verification is always one Twilio verification
and nobody's checks count against anyone else's code. A newer verification to the number wins:
an older one still waiting for its send is superseded without being sent.

Before the first send the number may also be looked up (Twilio Lookup v2): at enrolment, its
line type; at an SMS or voice login, whether its SIM changed lately.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from shared.audit.domain import EventType
from shared.errors import AttemptError, ErrorCode, ProviderError, ProviderTransientError
from shared.kit import metrics
from shared.kit.attempts import Wait, error_of
from shared.tenants.service import TenantProfile
from shared.unit_of_work import UnitOfWork
from shared.verifications.domain import (
    OPEN_VERIFICATION_STATUSES,
    Channel,
    Purpose,
    VerificationStatus,
)
from shared.verifications.events import event_for, record_for
from shared.verifications.models import Verification
from shared.verifications.passkeys import begin_ceremony
from shared.verifications.provider_attempt import VerificationAttempt
from shared.verifications.provider_calls import PROVIDER_LIFETIME
from shared.verifications.repository import VerificationRepository
from shared.verifications.send_rows import SentCode
from shared.verifications.totp import remember_factor
from shared.verifications.views import change_of
from shared.verify.port import ProviderVerification

# Twilio's timestamps have one-second resolution and its clock is not ours.
_CLOCK_TOLERANCE = timedelta(seconds=5)
# How long a send waits for another call on its number to finish before it looks again.
_IN_FLIGHT_WAIT_SECONDS = 1.0
_SUPERSEDED = AttemptError(
    ErrorCode.SUPERSEDED, "a newer verification to the same number took its place"
)


class Send(VerificationAttempt[Verification, ProviderVerification]):
    kind = "send"
    id_field = "verification_id"
    profile: TenantProfile
    # The tenant's other verifications to the number, open here or maybe at the provider.
    others: Sequence[Verification]

    def rows(self, uow: UnitOfWork) -> VerificationRepository:
        return uow.verifications

    async def begin(self) -> bool:
        calls = self.calls
        now = calls.clock.now()
        if not await self._claim(now):
            return False
        if now >= self.claimed.deadline_at:
            await self.give_up(
                AttemptError(ErrorCode.PROVIDER_UNAVAILABLE, "not sent before the deadline")
            )
            self.log.warning("send.deadline_passed", resend=self.resend)
            return False
        if any(_is_newer(other, self.claimed) for other in self._open_others()):
            await self._end(_SUPERSEDED, EventType.VERIFICATION_SUPERSEDED)
            self.log.info("send.superseded", resend=self.resend)
            return False
        self.profile = await calls.tenants.profile(self.claimed.tenant_id)
        return True

    async def claim_row(
        self, uow: UnitOfWork, now: datetime, until: datetime
    ) -> Verification | None:
        """The verification, claimed, and the tenant's others to its number, read in the same
        statement."""
        claimed = await uow.verifications.claim_with_others(
            self.row_id, now=now, until=until, lookback=PROVIDER_LIFETIME
        )
        if claimed is None:
            return None
        verification, self.others = claimed
        return verification

    def _open_others(self) -> list[Verification]:
        return [other for other in self.others if other.status in OPEN_VERIFICATION_STATUSES]

    @property
    def resend(self) -> bool:
        return self.claimed.status is VerificationStatus.PENDING

    @property
    def channel(self) -> Channel:
        return self.claimed.resend_channel or self.claimed.channel

    @property
    def service(self) -> str:
        return self.claimed.provider_service_sid or self.profile.service_sid

    async def call(self) -> ProviderVerification:
        calls, row = self.calls, self.claimed
        if row.channel.takes_credential:
            return await begin_ceremony(calls, row, self.service, await self._label())
        await self._clear_the_number()
        if self.lost_call_at is not None:
            existing = await self._sent_by_the_lost_call(self.lost_call_at)
            if existing is not None:
                return existing
        if not self.resend:
            await self._check_the_number()
        return await calls.through_gate(
            lambda: calls.verify.start_verification(
                self.service, row.destination, self.channel, row.locale
            )
        )

    async def _label(self) -> str:
        """What the authenticator shows a passkey being made as: the name it was enrolled with,
        else the user id."""
        if self.claimed.purpose is not Purpose.ENROLLMENT:
            return ""
        async with self.calls.uow_factory.reading() as read:
            factor = await read.factors.by_enrollment(self.row_id)
        # Twilio takes 64 characters at most; a user id may hold 128.
        return ((factor.label if factor else None) or str(self.claimed.user_id))[:64]

    async def _clear_the_number(self) -> None:
        """End the earlier verifications to the number, here and at the provider, before a
        send can be answered with one of them."""
        now = self.calls.clock.now()
        in_flight = [
            other
            for other in self.others
            if other.claimed_until is not None and other.claimed_until > now
        ]
        if in_flight:
            raise Wait(_IN_FLIGHT_WAIT_SECONDS, "another call on the number is in flight")
        superseded = [other.id for other in self._open_others()]
        if superseded:
            async with self.calls.uow_factory() as uow:
                for ended in await uow.verifications.supersede(superseded, _SUPERSEDED, now):
                    await record_for(uow, EventType.VERIFICATION_SUPERSEDED, ended)
                    uow.notify_after_commit(change_of(ended))
        for other in self.others:
            if other.provider_open and other.provider_sid is not None:
                await self.calls.close_at_provider(other)

    async def _sent_by_the_lost_call(self, lost_call_at: datetime) -> ProviderVerification | None:
        calls, to = self.calls, self.claimed.destination
        try:
            existing = await calls.through_gate(
                lambda: calls.verify.find_pending_verification(self.service, to)
            )
        except ProviderTransientError as exc:
            # We still do not know whether the lost call went out: keep looking next time.
            exc.ambiguous = True
            raise
        last_sent_at = existing.last_sent_at if existing is not None else None
        if last_sent_at is not None and last_sent_at >= lost_call_at - _CLOCK_TOLERANCE:
            metrics.RECONCILIATIONS.labels(job="send").inc()
            self.log.info("send.reconciled", note="the earlier call went through")
            return existing
        self.lost_call_at = None  # the provider says it sent nothing since: nothing was lost
        return None

    async def _check_the_number(self) -> None:
        """Twilio Lookup, where the tenant asked for it: a number that may not get this code
        is refused for good (the verification fails with the reason)."""
        row, profile = self.claimed, self.profile
        # An email address has no line: nothing to look up.
        line_type = (
            profile.checks_line_types
            and row.purpose is Purpose.ENROLLMENT
            and not self.channel.reaches_email
        )
        sim_swap = (
            profile.checks_sim_swaps and row.purpose is Purpose.LOGIN and self.channel.is_restricted
        )
        if not (line_type or sim_swap):
            return
        refusal = await self.calls.numbers.refusal(
            row, line_type=line_type, sim_swap=sim_swap, through=self.calls.through_gate
        )
        if refusal is not None:
            self.log.warning("send.number_refused", reason=refusal.reason.value)
            raise refusal

    async def answered(self, answer: ProviderVerification) -> None:
        calls = self.calls
        # One statement (``record_sent``) unless a passkey's factor is remembered with it.
        factory = calls.uow_factory
        if self._makes_a_passkey:
            unit = factory()
        else:
            unit = await factory.for_one_statement(self.claimed.tenant_id)
        async with unit as uow:
            now = calls.clock.now()  # once it is our turn to write: when the row changes
            # Never in the past: a clock far behind ours must not make the code useless at once.
            expires_at = max(
                answer.created_at + calls.settings.code_lifetime, now + timedelta(seconds=30)
            )
            options = answer.passkey_options
            code = SentCode(
                answer.sid,
                self.service,
                self.channel,
                expires_at,
                json.dumps(options) if options is not None else None,
            )
            event = event_for(
                uow,
                EventType.VERIFICATION_SENT,
                self.claimed,
                channel=self.channel.value,
                resend=self.resend,
            )
            sent = await uow.verifications.record_sent(self.row_id, self.token, code, now, event)
            if sent is not None and self._makes_a_passkey:
                await remember_factor(uow, sent.id, answer.sid)
                sent.destination = answer.sid
            if sent is None:
                self.log.warning("send.outcome_dropped", note="taken over or ended meanwhile")
            else:
                uow.notify_after_commit(change_of(sent))
        if sent is None:
            # Ended here meanwhile (canceled, superseded): it must not stay open at Twilio.
            await self._close_dropped(answer)
            return
        if not self.resend:
            metrics.TIME_TO_PENDING.labels(channel=self.channel.value).observe(
                (now - self.claimed.created_at).total_seconds()
            )
        self.log.info("send.pending", attempts=self.claimed.provider_attempts, resend=self.resend)

    @property
    def _makes_a_passkey(self) -> bool:
        return self.channel.takes_credential and self.claimed.purpose is Purpose.ENROLLMENT

    async def _close_dropped(self, answer: ProviderVerification) -> None:
        if answer.passkey_options is not None:
            return  # a passkey's factor or challenge: nothing to cancel at Twilio
        async with self.calls.uow_factory.reading() as read:
            holder = await read.verifications.pending_with_sid(answer.sid)
        if holder is None:  # nobody else was answered with it either
            await self.calls.cancel_quietly(self.service, answer.sid, self.row_id)

    async def refused(self, exc: ProviderError) -> None:
        await self._end(error_of(exc), None)
        self.log.warning(
            "send.failed",
            reason=exc.reason.value,
            provider_code=exc.provider_code,
            resend=self.resend,
        )

    async def give_up(self, error: AttemptError) -> None:
        await self._end(error, None)

    async def _end(self, error: AttemptError, event: EventType | None) -> None:
        """A first send that cannot (or must not) be made ends the verification; a re-send
        that cannot be made is dropped, and the code sent first still works."""
        superseded = error.reason is ErrorCode.SUPERSEDED
        async with self.calls.uow_factory() as uow:
            ended = await uow.verifications.give_up_send(
                self.row_id,
                self.token,
                error=error,
                now=self.calls.clock.now(),
                superseded=superseded,
            )
            if ended is not None:
                if event is None:
                    event = (
                        EventType.VERIFICATION_RESEND_FAILED
                        if self.resend
                        else EventType.VERIFICATION_FAILED
                    )
                await record_for(uow, event, self.claimed, reason=error.reason.value)
                uow.notify_after_commit(change_of(ended))


def _is_newer(other: Verification, than: Verification) -> bool:
    return (other.created_at, str(other.id)) > (than.created_at, str(than.id))
