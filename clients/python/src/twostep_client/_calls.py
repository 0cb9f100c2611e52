"""What both clients share: a call described once (method, path, body, how to read the answer,
whether a second try is safe, how long the API may hold it), and when to try again."""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from twostep_client._errors import UnexpectedAnswer, error_for, retry_after_seconds
from twostep_client._models import Json

T = TypeVar("T")

# The API holds a `?wait=` request at most this long; longer waits are several requests.
MAX_WAIT_SECONDS = 30.0
# After a held request that came back early undecided (the API had too many waiters), this
# long before the next, so that such a wait never turns into a busy loop.
POLL_FLOOR_SECONDS = 0.5
# Answers that say the work was not done and may be asked for again: the API's database or
# Redis away (503), or a proxy in front of it that found no API (502, 504).
_TRY_AGAIN_STATUSES = frozenset({502, 503, 504})


def segment(value: str) -> str:
    """An id as one path segment. The API routes on decoded paths, so an id with a slash, or
    one that is only dots, cannot be addressed at all: refuse it here, plainly."""
    if not value or value in (".", "..") or "/" in value:
        raise ValueError(f"{value!r} cannot be an id in a path (empty, dots only, or a slash)")
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
    # How long the API may hold the answer (`?wait=`); the read timeout gets it on top.
    wait: float = 0.0

    def request(self, http: httpx.Client | httpx.AsyncClient, timeout: float) -> httpx.Request:
        headers = {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else {}
        params = {**self.params, "wait": round(self.wait, 3)} if self.wait > 0 else self.params
        return http.build_request(
            self.method,
            self.path,
            json=self.body,
            params=params,
            headers=headers,
            timeout=httpx.Timeout(timeout, read=timeout + self.wait),
        )

    def after(self, elapsed: float) -> Call[T]:
        """The same call made again ``elapsed`` seconds after the first: it waits only for what
        is left of the wait."""
        if self.wait <= 0:
            return self
        return dataclasses.replace(self, wait=max(0.0, self.wait - elapsed))

    def result(self, response: httpx.Response) -> T:
        if not response.is_success:
            raise error_for(response)
        try:
            return self.read(response.json() if response.content else {})
        except (ValueError, KeyError, TypeError) as error:
            raise UnexpectedAnswer(
                f"{self.method} {self.path}: HTTP {response.status_code} with an answer this "
                f"client cannot read ({type(error).__name__}: {error})"
            ) from error


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
        if attempt >= self.max_retries or not call.repeatable:
            return None
        if response.status_code in _TRY_AGAIN_STATUSES:
            hinted = retry_after_seconds(response)
            return self._backoff(attempt) if hinted is None else min(hinted, self.longest_backoff)
        if response.status_code == 409 and call.idempotency_key and _code(response) == "conflict":
            # The first try of this key is still running (its answer was lost to us, not to
            # the API): once it ends, the same key replays its answer.
            return self._backoff(attempt)
        return None

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.longest_backoff, self.first_backoff * 2.0**attempt)
        return ceiling * (0.5 + random.random() / 2)  # jitter: clients must not retry in step


def _code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("code")) if isinstance(body, dict) else None
