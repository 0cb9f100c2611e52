"""What the sandbox counts about the requests it answered (``GET /sandbox/stats``)."""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class Stats:
    requests_total: int = 0
    requests_by_endpoint: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    responses_by_status: Counter[str] = field(default_factory=Counter)
    sends_by_to: Counter[str] = field(default_factory=Counter)
    rate: RateWindow = field(default_factory=RateWindow)
    in_flight: int = 0
    peak_in_flight: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def to_json(self) -> dict[str, Any]:
        duplicates = {to: n for to, n in self.sends_by_to.items() if n > 1}
        return {
            "requests_total": self.requests_total,
            "requests_by_endpoint": dict(self.requests_by_endpoint),
            "outcomes": dict(self.outcomes),
            "responses_by_status": dict(self.responses_by_status),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "sends_total": sum(self.sends_by_to.values()),
            "sends_by_to": dict(self.sends_by_to),
            "destinations_sent_more_than_once": len(duplicates),
            "max_sends_to_one_destination": max(self.sends_by_to.values(), default=0),
            "peak_requests_per_second": self.rate.peak,
            "uptime_seconds": round(time.monotonic() - self.started_at, 3),
        }
