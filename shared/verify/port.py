"""The Verify port: what the core needs from a one-time-code provider.

The Twilio adapter (``shared.verify.twilio``) implements it against Twilio Verify v2 or the
sandbox; tests use ``tests.fakes.FakeVerifyClient``. Every method raises only
``shared.errors.ProviderError`` subclasses. Calls are coroutines: a worker keeps hundreds in
flight on one event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.domain import Channel


@dataclass(frozen=True, slots=True)
class ProviderVerification:
    sid: str
    status: str  # the provider's word: pending, approved, canceled, ...
    channel: str
    created_at: datetime
    send_attempts: int
    last_sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class ProviderCheck:
    approved: bool


class VerifyClient(Protocol):
    async def start_verification(
        self, to: str, channel: Channel, locale: str | None
    ) -> ProviderVerification:
        """Ask the provider to send a code to ``to`` (E.164). Sending again to a number with a
        pending verification re-sends the same code on the same verification."""
        ...

    async def find_pending_verification(self, to: str) -> ProviderVerification | None:
        """The provider's pending verification for ``to``, or None when it has none."""
        ...

    async def check_code(self, verification_sid: str, code: str) -> ProviderCheck:
        """Check ``code`` against a pending verification. A wrong code is ``approved=False``."""
        ...

    async def cancel_verification(self, verification_sid: str) -> None:
        """End a pending verification, so that the next one to its number starts afresh
        instead of re-sending its code with its checks used up. One already over is fine."""
        ...

    async def close(self) -> None: ...
