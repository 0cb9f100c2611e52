"""Fakes behind the ports, for tests that need no network. They record what they were asked."""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.domain import Channel, ErrorCode
from shared.errors import (
    ProviderError,
    ProviderFinalError,
    ProviderTransientError,
    RateLimited,
    UserLocked,
)
from shared.jobs import Job
from shared.limits import Guards, LimitInfo, SendRequest
from shared.verify.port import ProviderCheck, ProviderVerification


@dataclass
class FakeJobQueue:
    published: list[Job] = field(default_factory=list)
    fail_with: Exception | None = None

    def publish(self, job: Job) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.published.append(job)


@dataclass
class FakeCodeStash:
    codes: dict[uuid.UUID, str] = field(default_factory=dict)

    def put(self, check_id: uuid.UUID, code: str, ttl_seconds: int) -> None:
        assert ttl_seconds > 0
        self.codes[check_id] = code

    def get(self, check_id: uuid.UUID) -> str | None:
        return self.codes.get(check_id)

    def discard(self, check_id: uuid.UUID) -> None:
        self.codes.pop(check_id, None)


@dataclass
class _FakePending:
    sid: str
    to: str
    code: str
    channel: str
    created_at: datetime
    sends: list[datetime]


class FakeVerifyClient:
    """Twilio's core rules, plus a script of errors to raise on the next calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (operation, to or sid)
        self.pending: dict[str, _FakePending] = {}
        self.script: deque[ProviderError | None] = deque()
        self.sent_codes: dict[str, str] = {}
        self._lose_next_answer = False

    def lose_next_answer(self) -> None:
        """The next start is carried out, but its answer never arrives (a read timeout)."""
        self._lose_next_answer = True

    def fail_next(self, *errors: ProviderError | None) -> None:
        """Queue outcomes for the next calls: an error to raise, or None to answer normally."""
        self.script.extend(errors)

    def _scripted(self) -> None:
        if self.script:
            error = self.script.popleft()
            if error is not None:
                raise error

    def start_verification(
        self,
        to: str,
        channel: Channel,
        locale: str | None,  # noqa: ARG002 - the port's signature
    ) -> ProviderVerification:
        self.calls.append(("start", to))
        self._scripted()
        now = datetime.now(UTC)
        pending = self.pending.get(to)
        if pending is None:
            pending = _FakePending(
                sid="VE" + secrets.token_hex(16),
                to=to,
                code=f"{secrets.randbelow(10**6):06d}",
                channel=channel.value,
                created_at=now,
                sends=[],
            )
            self.pending[to] = pending
        pending.sends.append(now)
        self.sent_codes[to] = pending.code
        if self._lose_next_answer:
            self._lose_next_answer = False
            raise ProviderTransientError("start verification: no answer in time", ambiguous=True)
        return self._provider_view(pending)

    def find_pending_verification(self, to: str) -> ProviderVerification | None:
        self.calls.append(("find", to))
        self._scripted()
        pending = self.pending.get(to)
        return self._provider_view(pending) if pending else None

    def check_code(self, verification_sid: str, code: str) -> ProviderCheck:
        self.calls.append(("check", verification_sid))
        self._scripted()
        pending = next((p for p in self.pending.values() if p.sid == verification_sid), None)
        if pending is None:
            raise ProviderFinalError(
                "check code: gone",
                reason=ErrorCode.VERIFICATION_EXPIRED,
                provider_code=20404,
                status=404,
            )
        if code == pending.code:
            del self.pending[pending.to]
            return ProviderCheck(approved=True)
        return ProviderCheck(approved=False)

    def close(self) -> None:
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

    def admit(self, request: SendRequest) -> None:
        sent = sum(1 for earlier in self.admitted if earlier.destination == request.destination)
        if sent >= self.per_destination:
            raise RateLimited("too many sends", limit="per_destination", retry_after=600)
        self.admitted.append(request)

    def describe(self) -> list[LimitInfo]:
        return [
            LimitInfo("per_destination", f"{self.per_destination} per 10 minutes", "each number")
        ]


@dataclass
class FakeLockout:
    failures: dict[str, int] = field(default_factory=dict)
    locked: set[str] = field(default_factory=set)

    def ensure_not_locked(self, user_id: str) -> None:
        if user_id in self.locked:
            raise UserLocked("locked", limit="user_lockout", retry_after=60)

    def record_failure(self, user_id: str) -> float:
        self.failures[user_id] = self.failures.get(user_id, 0) + 1
        return 0.0

    def record_success(self, user_id: str) -> None:
        self.failures.pop(user_id, None)


@dataclass
class FakeThrottle:
    """Answers the waits it is given, then lets everything through."""

    waits: deque[float] = field(default_factory=deque)
    reserved: int = 0

    def reserve(self) -> float:
        self.reserved += 1
        return self.waits.popleft() if self.waits else 0.0


def fake_guards() -> Guards:
    return Guards(sends=FakeSendLimits(), lockout=FakeLockout())


class FakeKeyLocks:
    """In-process turn-taking per key, as RedisKeyLocks does across processes."""

    def __init__(self) -> None:
        self._locks: dict[tuple[uuid.UUID, str], threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def hold(self, api_key_id: uuid.UUID, key: str) -> Iterator[None]:
        with self._guard:
            lock = self._locks.setdefault((api_key_id, key), threading.Lock())
        with lock:
            yield
