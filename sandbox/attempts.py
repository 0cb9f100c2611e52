"""Verify Attempts (``/v2/Attempts``): one per code sent, kept after its verification is gone.

Twilio deletes a verification once it is approved, expired or used up; its attempts stay, and
an approval marks every attempt of the verification "converted". That makes them the record
of whether a verification was approved after its answer was lost. Memory is bounded: the
latest ``ATTEMPTS_KEPT`` attempts are kept, the oldest dropped first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sandbox.common import format_time, invalid, is_sid, not_found, parse_time
from sandbox.lookup import region_of

ATTEMPTS_KEPT = 100_000
# The spec's verification_attempt_enum_channels.
ATTEMPT_CHANNELS = frozenset({"sms", "call", "email", "whatsapp", "rbm"})
FILTERS = (
    "DateCreatedAfter",
    "DateCreatedBefore",
    "ChannelData.To",
    "Country",
    "Channel",
    "VerifyServiceSid",
    "VerificationSid",
    "Status",
)


class SentVerification(Protocol):
    """What an attempt records of the verification that was sent."""

    sid: str
    account_sid: str
    service_sid: str
    to: str
    channel: str
    code: str


@dataclass
class Attempt:
    sid: str
    account_sid: str
    service_sid: str
    verification_sid: str
    to: str
    channel: str
    code_length: int
    created_at: datetime
    updated_at: datetime
    seq: int
    converted: bool = False

    def to_json(self, base_url: str) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "service_sid": self.service_sid,
            "verification_sid": self.verification_sid,
            "date_created": format_time(self.created_at),
            "date_updated": format_time(self.updated_at),
            "conversion_status": "converted" if self.converted else "unconverted",
            "channel": self.channel,
            # Twilio: "May not be immediately available"; the sandbox charges nothing.
            "price": None,
            "channel_data": {
                "verification_sid": self.verification_sid,
                "to": self.to,
                "status": "confirmed" if self.converted else "unconfirmed",
                "code_length": self.code_length,
                "country": region_of(self.to),
            },
            "url": f"{base_url}/v2/Attempts/{self.sid}",
        }


@dataclass(frozen=True)
class AttemptFilter:
    verification_sid: str | None = None
    service_sid: str | None = None
    to: str | None = None
    country: str | None = None
    channel: str | None = None
    converted: bool | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> AttemptFilter:
        """The spec's filters; a malformed one is a 400, not silently ignored."""
        verification_sid = query.get("VerificationSid")
        if verification_sid is not None and not is_sid(verification_sid, "VE"):
            raise invalid("VerificationSid")
        service_sid = query.get("VerifyServiceSid")
        if service_sid is not None and not is_sid(service_sid, "VA"):
            raise invalid("VerifyServiceSid")
        channel = query.get("Channel")
        if channel is not None and channel not in ATTEMPT_CHANNELS:
            raise invalid("Channel")
        status = query.get("Status")
        if status is not None and status.lower() not in ("converted", "unconverted"):
            raise invalid("Status")
        country = query.get("Country")
        if country is not None and not (len(country) == 2 and country.isalpha()):
            raise invalid("Country")
        return cls(
            verification_sid=verification_sid,
            service_sid=service_sid,
            to=query.get("ChannelData.To"),
            country=country.upper() if country else None,
            channel=channel,
            converted=None if status is None else status.lower() == "converted",
            created_after=_date(query, "DateCreatedAfter"),
            created_before=_date(query, "DateCreatedBefore"),
        )

    def admits(self, attempt: Attempt) -> bool:
        # Both date bounds are inclusive (choice: Twilio's timestamps have whole seconds).
        return (
            (self.service_sid is None or attempt.service_sid == self.service_sid)
            and (self.to is None or attempt.to == self.to)
            and (self.channel is None or attempt.channel == self.channel)
            and (self.converted is None or attempt.converted == self.converted)
            and (self.created_after is None or attempt.created_at >= self.created_after)
            and (self.created_before is None or attempt.created_at <= self.created_before)
            and (self.country is None or region_of(attempt.to) == self.country)
        )


def _date(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise invalid(name) from None


class AttemptLog:
    def __init__(self, limit: int = ATTEMPTS_KEPT) -> None:
        self.limit = limit
        self._by_sid: OrderedDict[str, Attempt] = OrderedDict()
        self._by_verification: dict[str, list[Attempt]] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._by_sid)

    def record(self, sid: str, verification: SentVerification, at: datetime) -> Attempt:
        """One more send of ``verification``: an attempt with its channel as it is now."""
        self._seq += 1
        attempt = Attempt(
            sid, verification.account_sid, verification.service_sid, verification.sid,
            verification.to, verification.channel, len(verification.code), at, at, self._seq,
        )  # fmt: skip
        self._by_sid[sid] = attempt
        self._by_verification.setdefault(verification.sid, []).append(attempt)
        while len(self._by_sid) > self.limit:
            self._forget(self._by_sid.popitem(last=False)[1])
        return attempt

    def convert(self, verification_sid: str, at: datetime) -> None:
        for attempt in self._by_verification.get(verification_sid, ()):
            attempt.converted = True
            attempt.updated_at = at

    def get(self, sid: str, account_sid: str) -> Attempt:
        attempt = self._by_sid.get(sid)
        if attempt is None or attempt.account_sid != account_sid:
            raise not_found(f"/Attempts/{sid}")
        return attempt

    def select(self, account_sid: str, wanted: AttemptFilter) -> list[Attempt]:
        """Newest first (choice: Twilio documents no order)."""
        if wanted.verification_sid is not None:
            candidates: Iterable[Attempt] = reversed(
                self._by_verification.get(wanted.verification_sid, [])
            )
        else:
            candidates = reversed(self._by_sid.values())
        return [a for a in candidates if a.account_sid == account_sid and wanted.admits(a)]

    def clear(self) -> None:
        self._by_sid.clear()
        self._by_verification.clear()

    def _forget(self, attempt: Attempt) -> None:
        siblings = self._by_verification.get(attempt.verification_sid)
        if siblings is None:
            return
        # The oldest attempt overall is the oldest of its verification: first in its list.
        if siblings and siblings[0] is attempt:
            siblings.pop(0)
        if not siblings:
            del self._by_verification[attempt.verification_sid]
