"""What both clients share: a call described once (method, path, body, how to read the answer,
whether a second try is safe), and when to try again."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from twostep_client._errors import error_for, retry_after_seconds
from twostep_client._models import Json

T = TypeVar("T")

# The API holds a `?wait=` request at most this long; longer waits are several requests.
MAX_WAIT_SECONDS = 30.0
# After a held request that came back early undecided (the API had too many waiters), this
# long before the next, so that such a wait never turns into a busy loop.
POLL_FLOOR_SECONDS = 0.5


def segment(value: str) -> str:
    """A path segment: a user id is the login server's own string, slashes included."""
    return quote(value, safe="")


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def without_none(**values: Any) -> Json:
    return {name: value for name, value in values.items() if value is not None}


def nothing(_body: Json) -> None:
    return None


@dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    read: Callable[[Json], T]
    body: Json | None = None
    params: dict[str, Any] = field(default_factory=dict)
    # A second try has no second effect: reads, and writes the API makes idempotent.
    repeatable: bool = True
    # Sent as Idempotency-Key: the API answers a repeat with the first answer.
    idempotency_key: str | None = None
    # How long the API may hold the answer (`?wait=`), on top of the client's timeout.
    held_for: float = 0.0

    def request(self, http: httpx.Client | httpx.AsyncClient, timeout: float) -> httpx.Request:
        headers = {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}
        return http.build_request(
            self.method,
            self.path,
            json=self.body,
            params=self.params,
            headers=headers,
            timeout=httpx.Timeout(timeout, read=timeout + self.held_for),
        )

    def result(self, response: httpx.Response) -> T:
        if not response.is_success:
            raise error_for(response)
        return self.read(response.json() if response.content else {})


@dataclass(frozen=True)
class RetryPolicy:
    """Tries again only where a repeat cannot do anything twice: a connection that was never
    made carried no request; reads and keyed writes may be repeated after any failure."""

    max_retries: int = 2
    first_backoff: float = 0.25
    longest_backoff: float = 2.0

    def after_error(
        self, call: Call[Any], error: httpx.TransportError, attempt: int
    ) -> float | None:
        never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
        if attempt >= self.max_retries or not (never_sent or call.repeatable):
            return None
        return self._backoff(attempt)

    def after_answer(self, call: Call[Any], response: httpx.Response, attempt: int) -> float | None:
        # A 503 is the API refusing work it cannot do safely now (its database or Redis is
        # away); the work was not done, and a repeatable call may ask again shortly.
        if response.status_code != 503 or attempt >= self.max_retries or not call.repeatable:
            return None
        hinted = retry_after_seconds(response)
        return self._backoff(attempt) if hinted is None else min(hinted, self.longest_backoff)

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.longest_backoff, self.first_backoff * 2.0**attempt)
        return ceiling * (0.5 + random.random() / 2)  # jitter: clients must not retry in step
