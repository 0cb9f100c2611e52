"""Twilio Verify v2's rules, in memory. No HTTP here: ``sandbox.app`` puts this on the wire.

The rules and where each comes from are in the README's sandbox section; the places where
Twilio documents nothing and we chose are marked "choice" below and listed there too.
"""

from __future__ import annotations

import re
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

SID_PATTERN = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9]\d{1,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CHANNELS = frozenset({"sms", "call", "email", "whatsapp"})
MAX_SENDS = 5
MAX_CHECKS = 5
DEFAULT_CODE_LENGTH = 6
DEFAULT_LIFETIME = timedelta(minutes=10)
MESSAGES_KEPT = 20_000


class TwilioError(Exception):
    """An error answer in Twilio's shape: HTTP status plus Twilio error code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class Clock:
    """Wall-clock time that tests can move forward (``POST /sandbox/clock``)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@dataclass
class Service:
    sid: str
    account_sid: str
    friendly_name: str
    code_length: int
    created_at: datetime
    updated_at: datetime


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


class VerifyState:
    def __init__(self, clock: Clock | None = None, lifetime: timedelta = DEFAULT_LIFETIME) -> None:
        self.clock = clock or Clock()
        self.lifetime = lifetime
        self.services: dict[str, Service] = {}
        self.verifications: dict[str, Verification] = {}
        self._pending: dict[tuple[str, str], str] = {}  # (service sid, to) -> verification sid
        self.messages: deque[Message] = deque(maxlen=MESSAGES_KEPT)

    # --- services

    def create_service(
        self, account_sid: str, friendly_name: str | None, code_length: str | None
    ) -> Service:
        if not friendly_name:
            raise TwilioError(
                400, 20001, "Missing required parameter FriendlyName in the post body"
            )
        if len(friendly_name) > 30:
            raise TwilioError(
                400, 60200, "Invalid parameter: FriendlyName is too long (max 30 characters)"
            )
        length = _code_length(code_length)
        now = self.clock.now()
        service = Service(new_sid("VA"), account_sid, friendly_name, length, now, now)
        self.services[service.sid] = service
        return service

    def service(self, service_sid: str, account_sid: str) -> Service:
        """Any well-formed service SID is served; one never created gets default settings."""
        if not service_sid.startswith("VA") or not SID_PATTERN.match(service_sid):
            raise TwilioError(
                404, 20404, f"The requested resource /Services/{service_sid} was not found"
            )
        service = self.services.get(service_sid)
        if service is None:
            now = self.clock.now()
            service = Service(
                service_sid, account_sid, "twostep sandbox", DEFAULT_CODE_LENGTH, now, now
            )
            self.services[service_sid] = service
        return service

    # --- verifications

    def create_verification(
        self, service: Service, to: str | None, channel: str | None
    ) -> Verification:
        if not to:
            raise TwilioError(400, 20001, "Missing required parameter To in the post body")
        if not channel:
            raise TwilioError(400, 20001, "Missing required parameter Channel in the post body")
        if channel not in CHANNELS:
            raise TwilioError(400, 60200, "Invalid parameter: Channel")
        shape = _EMAIL if channel == "email" else _E164
        if not shape.match(to):
            raise TwilioError(400, 60200, "Invalid parameter: To")
        now = self.clock.now()
        verification = self._pending_for(service.sid, to)
        if verification is None:
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
        elif len(verification.send_attempts) >= MAX_SENDS:
            raise TwilioError(429, 60203, "Max send attempts reached")
        # Re-sending keeps the SID, the code and the original expiry (choice: Twilio is silent
        # on whether a re-send extends the lifetime), and may switch channel.
        verification.channel = channel
        verification.updated_at = now
        verification.send_attempts.append(SendAttempt(now, channel, new_sid("VL")))
        self.messages.appendleft(Message(to, channel, verification.code, verification.sid, now))
        return verification

    def fetch_verification(self, service: Service, sid_or_to: str) -> Verification:
        """By SID: pending, or canceled (choice: canceled stays fetchable, as Twilio's own
        assistant says). By To: only the pending one. Approved, expired and max-attempts
        verifications are deleted, as on Twilio, and answer 404."""
        if SID_PATTERN.match(sid_or_to):
            verification = self.verifications.get(sid_or_to)
            if verification is not None and verification.service_sid == service.sid:
                self._expire_if_due(verification)
                if verification.status in ("pending", "canceled"):
                    return verification
        else:
            found = self._pending_for(service.sid, sid_or_to)
            if found is not None:
                return found
        raise TwilioError(
            404,
            20404,
            _not_found(f"/Services/{service.sid}/Verifications/{sid_or_to}"),
        )

    def update_verification(
        self, service: Service, sid_or_to: str, status: str | None
    ) -> Verification:
        if status not in ("canceled", "approved"):
            raise TwilioError(400, 60200, "Invalid parameter: Status")
        verification = self.fetch_verification(service, sid_or_to)
        if verification.status != "pending":
            raise TwilioError(
                404,
                20404,
                _not_found(f"/Services/{service.sid}/Verifications/{sid_or_to}"),
            )
        self._finish(verification, status)
        return verification

    def check(
        self, service: Service, to: str | None, verification_sid: str | None, code: str | None
    ) -> Verification:
        if not to and not verification_sid:
            raise TwilioError(400, 60221, "No target verification specified")
        if not code or not 4 <= len(code) <= 10:
            raise TwilioError(
                400, 60200, "Invalid parameter: Code parameter is not between 4-10 numbers long"
            )
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
            raise TwilioError(
                404,
                20404,
                f"The requested resource /Services/{service.sid}/VerificationCheck was not found",
            )
        if verification.checks >= MAX_CHECKS:
            # The 6th check, whatever the code: Twilio then deletes the verification.
            self._finish(verification, "max_attempts_reached")
            raise TwilioError(429, 60202, "Max check attempts reached")
        verification.checks += 1
        verification.updated_at = self.clock.now()
        if secrets.compare_digest(code, verification.code):
            self._finish(verification, "approved")
        return verification

    # --- inspection

    def messages_to(self, to: str | None, limit: int) -> list[Message]:
        selected = (m for m in self.messages if to is None or m.to == to)
        return [m for _, m in zip(range(limit), selected, strict=False)]

    def reset(self) -> None:
        self.services.clear()
        self.verifications.clear()
        self._pending.clear()
        self.messages.clear()
        self.clock.offset = timedelta(0)

    # --- internals

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
        verification.status = status
        verification.updated_at = self.clock.now()
        key = (verification.service_sid, verification.to)
        if self._pending.get(key) == verification.sid:
            del self._pending[key]
        if status != "canceled":
            # Deleted on Twilio; keep memory bounded under long benchmark runs.
            self.verifications.pop(verification.sid, None)


def _not_found(resource: str) -> str:
    return f"The requested resource {resource} was not found"


def _code_length(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_CODE_LENGTH
    try:
        length = int(raw)
    except ValueError:
        length = 0
    if not 4 <= length <= 10:
        raise TwilioError(400, 60200, "Invalid parameter: CodeLength")
    return length


class RateWindow:
    """The highest number of requests seen within any one second (sliding, exact)."""

    def __init__(self) -> None:
        self._arrivals: deque[float] = deque()
        self.peak = 0

    def hit(self, at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        self._arrivals.append(now)
        while self._arrivals and self._arrivals[0] <= now - 1.0:
            self._arrivals.popleft()
        self.peak = max(self.peak, len(self._arrivals))

    def reset(self) -> None:
        self._arrivals.clear()
        self.peak = 0
