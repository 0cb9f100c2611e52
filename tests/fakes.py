"""Fakes behind the ports, for tests that need no network. They record what they were asked."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp

from shared.errors import (
    ErrorCode,
    ProviderError,
    ProviderFinalError,
    ProviderTransientError,
    RateLimited,
    UserLocked,
)
from shared.kit.changes import Change
from shared.kit.jobs import Job
from shared.limits.ports import Guards, Guesser, LimitInfo, Lock, Outcome, SendRequest
from shared.verify.port import (
    LineFacts,
    PasskeyOptions,
    ProviderCheck,
    ProviderService,
    ProviderVerification,
    RelyingParty,
)


class FakeClock:
    """Time that moves only when told to, or when someone sleeps (who then wakes at once)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(UTC)
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)


@dataclass
class FakeJobQueue:
    published: list[Job] = field(default_factory=list)
    fail_with: Exception | None = None

    async def publish(self, jobs: Sequence[Job]) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.extend(jobs)


@dataclass
class FakeChangeFeed:
    changes: list[Change] = field(default_factory=list)

    async def publish(self, changes: Iterable[Change]) -> None:
        self.changes.extend(changes)

    @property
    def published(self) -> list[uuid.UUID]:
        return [change.row_id for change in self.changes]


@dataclass
class FakeCodeStash:
    codes: dict[uuid.UUID, str] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)

    async def put(self, check_id: uuid.UUID, code: str, ttl_seconds: int) -> None:
        assert ttl_seconds > 0
        self.codes[check_id] = code

    async def get(self, check_id: uuid.UUID) -> str | None:
        return self.codes.get(check_id)

    async def discard(self, *check_ids: uuid.UUID) -> None:
        for check_id in check_ids:
            self.codes.pop(check_id, None)

    async def claim_once(self, name: str, ttl_seconds: int) -> bool:
        assert ttl_seconds > 0
        first = name not in self.claimed
        self.claimed.add(name)
        return first


@dataclass
class _FakePending:
    sid: str
    service: str
    to: str
    code: str
    channel: str
    created_at: datetime
    sends: list[datetime]


FAKE_SERVICE = "VA" + "f" * 32


class FakeVerifyClient:
    """Twilio's core rules, per service, plus a script of errors to raise on the next calls.

    Also the other ports of ``shared.verify.port``: services, and a Lookup whose answers a test
    sets per number in ``line_types`` and ``swapped_at``."""

    default_service = FAKE_SERVICE

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (operation, to or sid)
        self.pending: dict[tuple[str, str], _FakePending] = {}  # (service, to)
        self.approved: set[str] = set()  # SIDs approved, as the Attempts API remembers them
        self.script: deque[ProviderError | None] = deque()
        self.sent_codes: dict[str, str] = {}
        self.services: dict[str, ProviderService] = {
            FAKE_SERVICE: ProviderService(FAKE_SERVICE, "fake", 6)
        }
        self.line_types: dict[str, str] = {}
        self.swapped_at: dict[str, datetime] = {}
        self.totp_factors: dict[str, list[str | bool]] = {}  # sid -> [secret, verified]
        # Passkeys: a credential "signs" options by carrying their challenge (``sign``).
        self.passkey_factors: dict[str, bool] = {}  # sid -> verified
        self.passkey_challenges: dict[str, tuple[str, str]] = {}  # YC sid -> (YF sid, challenge)
        self._passkey_options: dict[str, str] = {}  # YF sid -> its creation challenge
        self._lose_next_answer = False

    def lose_next_answer(self) -> None:
        """The next call is carried out, but its answer never arrives (a read timeout)."""
        self._lose_next_answer = True

    def fail_next(self, *errors: ProviderError | None) -> None:
        """Queue outcomes for the next calls: an error to raise, or None to answer normally."""
        self.script.extend(errors)

    def _scripted(self) -> None:
        if self.script:
            error = self.script.popleft()
            if error is not None:
                raise error

    def _answer_lost(self, operation: str) -> None:
        if self._lose_next_answer:
            self._lose_next_answer = False
            raise ProviderTransientError(f"{operation}: no answer in time", ambiguous=True)

    async def start_verification(
        self,
        service: str,
        to: str,
        channel: str,
        locale: str | None,  # noqa: ARG002 - the port's signature
    ) -> ProviderVerification:
        self.calls.append(("start", to))
        self._scripted()
        now = datetime.now(UTC)
        pending = self.pending.get((service, to))
        if pending is None:
            pending = _FakePending(
                sid="VE" + secrets.token_hex(16),
                service=service,
                to=to,
                code=f"{secrets.randbelow(10**6):06d}",
                channel=str(channel),
                created_at=now,
                sends=[],
            )
            self.pending[(service, to)] = pending
        pending.sends.append(now)
        self.sent_codes[to] = pending.code
        self._answer_lost("start verification")
        return self._provider_view(pending)

    async def find_pending_verification(self, service: str, to: str) -> ProviderVerification | None:
        self.calls.append(("find", to))
        self._scripted()
        pending = self.pending.get((service, to))
        return self._provider_view(pending) if pending else None

    def has_pending(self, to: str) -> bool:
        return any(pending.to == to for pending in self.pending.values())

    def pending_to(self, to: str) -> _FakePending:
        """The one pending verification to ``to``, whatever its service."""
        (found,) = [pending for pending in self.pending.values() if pending.to == to]
        return found

    def _by_sid(self, service: str, sid: str) -> _FakePending | None:
        return next(
            (p for p in self.pending.values() if p.sid == sid and p.service == service), None
        )

    async def check_code(self, service: str, verification_sid: str, code: str) -> ProviderCheck:
        self.calls.append(("check", verification_sid))
        self._scripted()
        pending = self._by_sid(service, verification_sid)
        if pending is None:
            raise ProviderFinalError(
                "check code: gone",
                reason=ErrorCode.VERIFICATION_EXPIRED,
                provider_code=20404,
                status=404,
            )
        approved = code == pending.code
        if approved:
            del self.pending[(service, pending.to)]
            self.approved.add(pending.sid)
        self._answer_lost("check code")
        return ProviderCheck(approved=approved)

    async def cancel_verification(self, service: str, verification_sid: str) -> None:
        self.calls.append(("cancel", verification_sid))
        self._scripted()
        pending = self._by_sid(service, verification_sid)
        if pending is not None:
            del self.pending[(service, pending.to)]

    async def was_approved(self, service: str, verification_sid: str) -> bool:  # noqa: ARG002
        self.calls.append(("attempts", verification_sid))
        self._scripted()
        return verification_sid in self.approved

    async def create_totp_factor(
        self,
        service: str,  # noqa: ARG002 - the port's signature
        identity: str,
        friendly_name: str,  # noqa: ARG002
        secret: str,
    ) -> str:
        self.calls.append(("create_factor", identity))
        self._scripted()
        sid = "YF" + secrets.token_hex(16)
        self.totp_factors[sid] = [secret, False]
        return sid

    async def verify_totp_factor(
        self,
        service: str,  # noqa: ARG002 - the port's signature
        identity: str,  # noqa: ARG002
        factor_sid: str,
        code: str,
    ) -> ProviderCheck:
        self.calls.append(("verify_factor", factor_sid))
        self._scripted()
        factor = self.totp_factors[factor_sid]
        factor[1] = bool(factor[1]) or pyotp.TOTP(str(factor[0])).verify(code, valid_window=1)
        return ProviderCheck(approved=bool(factor[1]))

    async def check_totp(
        self,
        service: str,  # noqa: ARG002 - the port's signature
        identity: str,  # noqa: ARG002
        factor_sid: str,
        code: str,
    ) -> ProviderCheck:
        self.calls.append(("challenge", factor_sid))
        self._scripted()
        secret, verified = self.totp_factors[factor_sid]
        assert verified, "a challenge of an unverified factor (Twilio: 60318)"
        return ProviderCheck(approved=pyotp.TOTP(str(secret)).verify(code, valid_window=1))

    @staticmethod
    def sign(options: dict[str, Any], *, tampered: bool = False) -> dict[str, Any]:
        """A browser's credential for ``options``, as this fake checks them; ``tampered``: one
        signed for something else."""
        challenge = "not-" + options["challenge"] if tampered else options["challenge"]
        return {
            "id": "cred",
            "rawId": "cred",
            "type": "public-key",
            "response": {"clientDataJSON": challenge},
        }

    async def configure_passkeys(
        self,
        service: str,  # noqa: ARG002 - the port's signature
        relying_party: RelyingParty,
    ) -> None:
        self.calls.append(("configure_passkeys", relying_party.id))
        self._scripted()

    async def create_passkey_factor(
        self,
        service: str,  # noqa: ARG002 - the port's signature
        identity: str,
        friendly_name: str,
    ) -> PasskeyOptions:
        self.calls.append(("create_passkey", identity))
        self._scripted()
        sid, challenge = "YF" + secrets.token_hex(16), secrets.token_urlsafe(16)
        self.passkey_factors[sid] = False
        self._passkey_options[sid] = challenge
        self._answer_lost("create passkey factor")
        return PasskeyOptions(sid, {"challenge": challenge, "user": {"name": friendly_name}})

    async def verify_passkey_factor(
        self,
        service: str,  # noqa: ARG002 - the port's signature
        factor_sid: str,
        credential: dict[str, Any],
    ) -> ProviderCheck:
        self.calls.append(("verify_passkey", factor_sid))
        self._scripted()
        signed = credential["response"]["clientDataJSON"] == self._passkey_options[factor_sid]
        self.passkey_factors[factor_sid] = self.passkey_factors[factor_sid] or signed
        return ProviderCheck(approved=signed)

    async def create_passkey_challenge(
        self,
        service: str,  # noqa: ARG002 - the port's signature
        identity: str,  # noqa: ARG002
        factor_sid: str,
    ) -> PasskeyOptions:
        self.calls.append(("passkey_challenge", factor_sid))
        self._scripted()
        assert self.passkey_factors[factor_sid], "a challenge of an unverified passkey (60318)"
        sid, challenge = "YC" + secrets.token_hex(16), secrets.token_urlsafe(16)
        self.passkey_challenges[sid] = (factor_sid, challenge)
        return PasskeyOptions(sid, {"challenge": challenge})

    async def approve_passkey_challenge(
        self,
        service: str,  # noqa: ARG002 - the port's signature
        challenge_sid: str,
        assertion: dict[str, Any],
    ) -> ProviderCheck:
        self.calls.append(("approve_passkey", challenge_sid))
        self._scripted()
        _factor, challenge = self.passkey_challenges[challenge_sid]
        approved = assertion["response"]["clientDataJSON"] == challenge
        if approved:  # once: a challenge approved is over
            del self.passkey_challenges[challenge_sid]
        return ProviderCheck(approved=approved)

    async def create_service(self, friendly_name: str, code_length: int) -> ProviderService:
        self.calls.append(("create_service", friendly_name))
        service = ProviderService("VA" + secrets.token_hex(16), friendly_name, code_length)
        self.services[service.sid] = service
        return service

    async def fetch_service(self, service: str) -> ProviderService:
        self.calls.append(("fetch_service", service))
        found = self.services.get(service)
        if found is None:
            raise ProviderFinalError(
                "fetch service: gone", reason=ErrorCode.PROVIDER_REJECTED, provider_code=20404
            )
        return found

    async def look_up(self, e164: str, *, line_type: bool, sim_swap: bool) -> LineFacts:
        self.calls.append(("lookup", e164))
        self._scripted()
        swapped_at = self.swapped_at.get(e164)
        return LineFacts(
            line_type=self.line_types.get(e164, "mobile") if line_type else None,
            last_sim_swap_at=swapped_at if sim_swap else None,
            swapped_in_period=(swapped_at is not None) if sim_swap else None,
        )

    async def close(self) -> None:
        pass

    def count(self, operation: str) -> int:
        return sum(1 for op, _ in self.calls if op == operation)

    @staticmethod
    def _provider_view(pending: _FakePending) -> ProviderVerification:
        return ProviderVerification(
            sid=pending.sid,
            status="pending",
            channel=pending.channel,
            created_at=pending.created_at,
            send_attempts=len(pending.sends),
            last_sent_at=pending.sends[-1] if pending.sends else None,
        )


@dataclass
class FakeSendLimits:
    """Counts sends per destination in memory; refuses past ``per_destination``."""

    per_destination: int = 1000
    admitted: list[SendRequest] = field(default_factory=list)

    async def admit(self, request: SendRequest) -> None:
        sent = sum(1 for earlier in self.admitted if earlier.destination == request.destination)
        if request.destination is not None and sent >= self.per_destination:
            raise RateLimited("too many sends", limit="per_destination", retry_after=600)
        self.admitted.append(request)

    def describe(self) -> list[LimitInfo]:
        return [
            LimitInfo("per_destination", f"{self.per_destination} per 10 minutes", "each number")
        ]


@dataclass
class FakeLockout:
    """Locks a user after ``lock_after`` wrong codes; ``locked`` holds user ids locked by hand.
    Records every reservation and how it was settled."""

    lock_after: int = 1000
    failures: dict[str, int] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)
    reserved: dict[str, Guesser] = field(default_factory=dict)
    settled: list[tuple[str, Outcome]] = field(default_factory=list)
    released: list[Guesser] = field(default_factory=list)

    async def check(self, guesser: Guesser) -> None:
        if guesser.user_id in self.locked:
            raise UserLocked("locked", limit="user_lockout", retry_after=60)

    async def reserve(self, guesser: Guesser, attempt: str, ttl_seconds: float) -> None:
        assert ttl_seconds > 0
        if guesser.user_id in self.locked:
            raise UserLocked("locked", limit="user_lockout", retry_after=60)
        self.reserved[attempt] = guesser

    async def settle(self, guesser: Guesser, attempt: str, outcome: Outcome) -> Lock | None:
        self.reserved.pop(attempt, None)
        self.settled.append((attempt, outcome))
        user = guesser.user_id
        if user is None:
            return None
        if outcome is Outcome.RIGHT:
            self.failures.pop(user, None)
        elif outcome is Outcome.WRONG:
            self.failures[user] = self.failures.get(user, 0) + 1
            if self.failures[user] >= self.lock_after:
                self.locked.add(user)
                return Lock(seconds=60)
        return None

    async def release(self, guesser: Guesser) -> None:
        self.released.append(guesser)
        self.locked.discard(guesser.user_id or "")
        self.failures.pop(guesser.user_id or "", None)


@dataclass
class FakeLineTypes:
    known: dict[str, str] = field(default_factory=dict)

    async def get(self, lookup: str) -> str | None:
        return self.known.get(lookup)

    async def put(self, lookup: str, line_type: str) -> None:
        self.known[lookup] = line_type


@dataclass
class FakeActionLimit:
    allowed: int = 1000
    seen: list[str] = field(default_factory=list)

    async def admit(self, subject: str) -> None:
        if self.seen.count(subject) >= self.allowed:
            raise RateLimited("too many", limit="recovery_code_sets", retry_after=3600)
        self.seen.append(subject)


@dataclass
class FakeGate:
    """Answers the waits it is given, then lets everything through; counts slots held."""

    waits: deque[float] = field(default_factory=deque)
    entered: int = 0
    failed: int = 0
    held: set[str] = field(default_factory=set)

    async def enter(self) -> str | float:
        if self.waits:
            return self.waits.popleft()
        self.entered += 1
        slot = secrets.token_hex(4)
        self.held.add(slot)
        return slot

    async def leave(self, slot: str, *, failed: bool = False) -> None:
        self.give_back(slot, failed=failed)

    def give_back(self, slot: str, *, failed: bool = False) -> None:
        self.held.discard(slot)
        self.failed += failed


def fake_guards() -> Guards:
    return Guards(
        sends=FakeSendLimits(), lockout=FakeLockout(), recovery_code_sets=FakeActionLimit()
    )


class FakeKeyLocks:
    """In-process turn-taking per key, as RedisKeyLocks does across processes."""

    def __init__(self) -> None:
        self._locks: dict[tuple[uuid.UUID, str], asyncio.Lock] = {}

    @asynccontextmanager
    async def hold(self, api_key_id: uuid.UUID, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault((api_key_id, key), asyncio.Lock())
        async with lock:
            yield


@dataclass
class FakePoster:
    """Answers with the scripted statuses (an exception: no answer), then 200; records posts."""

    script: deque[int | Exception] = field(default_factory=deque)
    posts: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        self.posts.append((url, body, headers))
        outcome = self.script.popleft() if self.script else 200
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class FakeTimer:
    """Monotonic seconds that move only when a test moves them (``timer.now += 5``)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
