"""Twilio Verify v2's rules, in memory. No HTTP here: ``sandbox.app`` puts this on the wire.

Everything is per service: pending verifications, codes, the send limit and the inbox. The
rules and where each comes from are in sandbox/README.md; the places where Twilio
documents nothing and we chose are marked "choice" below and listed there too.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sandbox.attempts import ATTEMPTS_KEPT, AttemptLog
from sandbox.common import Clock, TwilioError, invalid, is_sid, new_sid, not_found
from sandbox.factors import Factors
from sandbox.passkeys import Passkeys
from sandbox.services import Service, ServiceRegistry, ServiceStore

_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CHANNELS = frozenset({"sms", "call", "email", "whatsapp"})
# "More than 5 sends to the same entity within 10 minutes" is 60203 (sandbox/README.md).
MAX_SENDS = 5
SEND_WINDOW = timedelta(minutes=10)
MAX_CHECKS = 5
DEFAULT_LIFETIME = timedelta(minutes=10)
MESSAGES_KEPT = 20_000
# Twilio's wording, typographic apostrophe included.
DO_NOT_SHARE = ". Don\u2019t share this code with anyone; our employees will never ask for the code"


@dataclass
class SendAttempt:
    time: datetime
    channel: str
    attempt_sid: str


@dataclass
class Verification:
    sid: str
    service_sid: str
    account_sid: str
    to: str
    channel: str
    code: str = field(repr=False)
    status: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    send_attempts: list[SendAttempt] = field(default_factory=list)
    checks: int = 0
    lookup: dict[str, Any] = field(default_factory=dict)

    @property
    def valid(self) -> bool:
        return self.status == "approved"


@dataclass(frozen=True)
class Message:
    to: str
    channel: str
    code: str = field(repr=False)
    verification_sid: str
    created_at: datetime
    service_sid: str
    body: str = field(repr=False)


@dataclass(frozen=True)
class SendRequest:
    """A create's parameters, checked; whether the number takes the channel is the caller's."""

    to: str
    channel: str
    custom_code: str | None = field(default=None, repr=False)


class VerifyState:
    def __init__(
        self,
        clock: Clock | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
        *,
        store: ServiceStore | None = None,
        attempts_kept: int = ATTEMPTS_KEPT,
    ) -> None:
        self.clock = clock or Clock()
        self.lifetime = lifetime
        self.services = ServiceRegistry(self.clock, store)
        self.attempts = AttemptLog(attempts_kept)
        self.verifications: dict[str, Verification] = {}
        self._pending: dict[tuple[str, str], str] = {}  # (service sid, to) -> verification sid
        # (service sid, to) -> times of its sends in the last SEND_WINDOW, least recent first.
        self._sends: OrderedDict[tuple[str, str], deque[datetime]] = OrderedDict()
        self.messages: deque[Message] = deque(maxlen=MESSAGES_KEPT)
        self.factors = Factors(self.clock)
        self.passkeys = Passkeys(self.clock, self.factors.entities)

    # --- verifications

    def send_request(
        self,
        service: Service,
        to: str | None,
        channel: str | None,
        custom_code: str | None = None,
    ) -> SendRequest:
        if not to:
            raise TwilioError(400, 20001, "Missing required parameter To in the post body")
        if not channel:
            raise TwilioError(400, 20001, "Missing required parameter Channel in the post body")
        if channel not in CHANNELS:
            raise invalid("Channel")
        shape = _EMAIL if channel == "email" else _E164
        if not shape.match(to):
            raise invalid("To")
        if channel == "email" and not service.email_integration:
            # https://www.twilio.com/docs/api/errors/60217
            raise TwilioError(
                400, 60217, "Add an email integration before using the Email channel."
            )
        if custom_code is not None:
            if not service.custom_code_enabled:
                raise TwilioError(403, 60204, "Service does not support this feature")
            if not 4 <= len(custom_code) <= 10:
                raise invalid("CustomCode")
        return SendRequest(to, channel, custom_code)

    def send(self, service: Service, request: SendRequest) -> Verification:
        to, channel = request.to, request.channel
        now = self.clock.now()
        sends = self._recent_sends(service.sid, to, now)
        if len(sends) >= MAX_SENDS:
            raise TwilioError(429, 60203, "Max send attempts reached")
        verification = self._pending_for(service.sid, to)
        if verification is None:
            verification = self._new_verification(service, to, channel, now)
        if request.custom_code is not None:
            # Choice: a re-send's custom code replaces the pending one's; the customer makes
            # the codes, and the message it asked for carries the one it just made.
            verification.code = request.custom_code
        # Re-sending keeps the SID, the code and the original expiry (choice: Twilio is silent
        # on whether a re-send extends the lifetime), and may switch channel.
        verification.channel = channel
        verification.updated_at = now
        attempt_sid = new_sid("VL")
        verification.send_attempts.append(SendAttempt(now, channel, attempt_sid))
        sends.append(now)
        self._sends.move_to_end((service.sid, to))
        self.attempts.record(attempt_sid, verification, now)
        body = _body(service, channel, verification.code)
        self.messages.appendleft(
            Message(to, channel, verification.code, verification.sid, now, service.sid, body)
        )
        return verification

    def fetch_verification(self, service: Service, sid_or_to: str) -> Verification:
        """By SID: pending, or canceled (choice: canceled stays fetchable, as Twilio's own
        assistant says). By To: only the pending one. Approved, expired and max-attempts
        verifications are deleted, as on Twilio, and answer 404."""
        if is_sid(sid_or_to, "VE"):
            verification = self.verifications.get(sid_or_to)
            if verification is not None and verification.service_sid == service.sid:
                self._expire_if_due(verification)
                if verification.status in ("pending", "canceled"):
                    return verification
        else:
            found = self._pending_for(service.sid, sid_or_to)
            if found is not None:
                return found
        raise not_found(f"/Services/{service.sid}/Verifications/{sid_or_to}")

    def update_verification(
        self, service: Service, sid_or_to: str, status: str | None
    ) -> Verification:
        if status not in ("canceled", "approved"):
            raise invalid("Status")
        verification = self.fetch_verification(service, sid_or_to)
        if verification.status != "pending":
            raise not_found(f"/Services/{service.sid}/Verifications/{sid_or_to}")
        self._finish(verification, status)
        return verification

    def check(
        self, service: Service, to: str | None, verification_sid: str | None, code: str | None
    ) -> Verification:
        if not to and not verification_sid:
            raise TwilioError(400, 60221, "No target verification specified")
        if not code or not 4 <= len(code) <= 10:
            raise invalid("Code parameter is not between 4-10 numbers long")
        if verification_sid:
            verification = self.verifications.get(verification_sid)
            if verification is not None and (
                verification.service_sid != service.sid or self._expire_if_due(verification)
            ):
                verification = None
        else:
            assert to is not None
            verification = self._pending_for(service.sid, to)
        if verification is None or verification.status != "pending":
            raise not_found(f"/Services/{service.sid}/VerificationCheck")
        if verification.checks >= MAX_CHECKS:
            # The 6th check, whatever the code: Twilio then deletes the verification.
            self._finish(verification, "max_attempts_reached")
            raise TwilioError(429, 60202, "Max check attempts reached")
        verification.checks += 1
        verification.updated_at = self.clock.now()
        if secrets.compare_digest(code, verification.code):
            self._finish(verification, "approved")
        return verification

    def delete_service(self, service: Service) -> None:
        """Gone with everything under it, as on Twilio (its attempts stay: they are the
        account's record)."""
        self.services.delete(service)
        for sid in [s for s, v in self.verifications.items() if v.service_sid == service.sid]:
            del self.verifications[sid]
        for table in (self._pending, self._sends):
            for key in [key for key in table if key[0] == service.sid]:
                del table[key]

    # --- inspection

    def messages_to(
        self, to: str | None, limit: int, service_sid: str | None = None
    ) -> list[Message]:
        selected = (
            m
            for m in self.messages
            if (to is None or m.to == to) and (service_sid is None or m.service_sid == service_sid)
        )
        return [m for _, m in zip(range(limit), selected, strict=False)]

    def reset(self) -> None:
        """Forget everything but the default service (made afresh)."""
        self.services.reset()
        self.attempts.clear()
        self.verifications.clear()
        self._pending.clear()
        self._sends.clear()
        self.messages.clear()
        self.factors.reset()
        self.passkeys.reset()
        self.clock.offset = timedelta(0)

    # --- internals

    def _new_verification(
        self, service: Service, to: str, channel: str, now: datetime
    ) -> Verification:
        verification = Verification(
            sid=new_sid("VE"),
            service_sid=service.sid,
            account_sid=service.account_sid,
            to=to,
            channel=channel,
            code="".join(secrets.choice("0123456789") for _ in range(service.code_length)),
            status="pending",
            created_at=now,
            updated_at=now,
            expires_at=now + self.lifetime,
        )
        self.verifications[verification.sid] = verification
        self._pending[(service.sid, to)] = verification.sid
        return verification

    def _recent_sends(self, service_sid: str, to: str, now: datetime) -> deque[datetime]:
        """The sends to ``to`` within the moving window; windows gone quiet are dropped, least
        recently used first, so memory follows the numbers of the last ten minutes."""
        horizon = now - SEND_WINDOW
        while self._sends:
            oldest = next(iter(self._sends.values()))
            if oldest and oldest[-1] > horizon:
                break
            self._sends.popitem(last=False)
        sends = self._sends.setdefault((service_sid, to), deque())
        while sends and sends[0] <= horizon:
            sends.popleft()
        return sends

    def _pending_for(self, service_sid: str, to: str) -> Verification | None:
        sid = self._pending.get((service_sid, to))
        if sid is None:
            return None
        verification = self.verifications[sid]
        if self._expire_if_due(verification):
            return None
        return verification

    def _expire_if_due(self, verification: Verification) -> bool:
        if verification.status == "pending" and self.clock.now() >= verification.expires_at:
            self._finish(verification, "expired")
        return verification.status == "expired"

    def _finish(self, verification: Verification, status: str) -> None:
        now = self.clock.now()
        verification.status = status
        verification.updated_at = now
        key = (verification.service_sid, verification.to)
        if self._pending.get(key) == verification.sid:
            del self._pending[key]
        if status == "approved":
            self.attempts.convert(verification.sid, now)
            # Choice: an approval ends the send limit's count for that number ("cleared by
            # completing the check", sandbox/README.md); a cancel or an expiry does not.
            self._sends.pop(key, None)
        if status != "canceled":
            # Deleted on Twilio; keep memory bounded under long benchmark runs.
            self.verifications.pop(verification.sid, None)


def _body(service: Service, channel: str, code: str) -> str:
    """The text Twilio's default template sends (its DoNotShareWarning is for SMS only)."""
    body = f"Your {service.friendly_name} verification code is: {code}"
    if channel == "sms" and service.do_not_share_warning_enabled:
        body += DO_NOT_SHARE
    return body
