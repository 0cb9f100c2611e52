"""Password guessing and sign-up floods, limited with the `limits` library's moving windows
in this process's memory (one process; several would share a Redis storage instead).

A refused attempt costs no password hash and reads the same whether or not the email has an
account: the counters are keyed by what was typed, never by what the database holds."""

from __future__ import annotations

import contextlib
import ipaddress
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

_Key = tuple[RateLimitItem, str, str]


@dataclass
class Attempt:
    """One password typed. ``wait``: refused, for this many seconds. Set ``right`` once the
    password matched; any other way out (wrong, or an error) counts as a wrong one."""

    wait: float | None = None
    right: bool = False


def network(ip: str | None) -> str:
    """What one client is: an address, an IPv6 client's /64 (it has all of them)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Throttle:
    def __init__(self, *, per_email: str, per_ip: str, signups_per_ip: str) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._per_email, self._per_ip = parse(per_email), parse(per_ip)
        self._signups = parse(signups_per_ip)
        # Passwords being hashed right now count against their limits already: otherwise a
        # burst of guesses would all pass the test before the first wrong one is counted.
        self._in_flight: Counter[tuple[str, str]] = Counter()

    @contextlib.contextmanager
    def password_attempt(self, email: str, ip: str | None) -> Iterator[Attempt]:
        keys = [(self._per_email, "email", email), (self._per_ip, "ip", network(ip))]
        attempt = Attempt(wait=self._wait(keys))
        if attempt.wait is not None:
            yield attempt
            return
        for _limit, kind, value in keys:
            self._in_flight[(kind, value)] += 1
        try:
            yield attempt
        finally:
            for limit, kind, value in keys:
                self._in_flight[(kind, value)] -= 1
                if self._in_flight[(kind, value)] <= 0:
                    del self._in_flight[(kind, value)]
                if not attempt.right:
                    self._limiter.hit(limit, kind, value)

    def signup_wait(self, ip: str | None) -> float | None:
        """Counts this sign-up; how long to wait if there were too many from its client."""
        subject = network(ip)
        if self._limiter.hit(self._signups, "signup", subject):
            return None
        return self._until_free(self._signups, "signup", subject)

    def _wait(self, keys: list[_Key]) -> float | None:
        waits = [
            self._until_free(limit, kind, value)
            for limit, kind, value in keys
            if self._limiter.get_window_stats(limit, kind, value).remaining
            <= self._in_flight[(kind, value)]
        ]
        return max(waits) if waits else None

    def _until_free(self, limit: RateLimitItem, kind: str, value: str) -> float:
        reset = self._limiter.get_window_stats(limit, kind, value).reset_time
        return max(1.0, reset - time.time())
