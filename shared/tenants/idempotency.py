"""``Idempotency-Key``: a repeated request gets the first one's answer instead of a second effect.

Keys are scoped to the API key that used them and kept for ``TWOSTEP_IDEMPOTENCY_TTL_SECONDS``
(24 h). The same key with a different request is refused. A request is fingerprinted without
any one-time code in it — a code is never stored, not even hashed — so for checks the
fingerprint covers which verification, not which code. Requests racing with one key take turns
(a lock in Redis): the first does the work, the others replay its answer, so even the limits
count a racing repeat once.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import redis.asyncio as redis
from redis.exceptions import LockError

from shared.errors import Conflict, IdempotencyKeyReused, InvalidInput, ServiceUnavailable
from shared.kit.crypto import Keyring
from shared.kit.lookups import idempotency_lookup
from shared.tenants.models import IdempotencyRecord
from shared.unit_of_work import Repositories, UnitOfWork

KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY_SHAPE = re.compile(KEY_PATTERN)
_NEVER_FINGERPRINTED = frozenset({"code"})


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    status: int
    body: dict[str, Any]


def fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    kept = {name: value for name, value in body.items() if name not in _NEVER_FINGERPRINTED}
    canonical = json.dumps([method.upper(), path, kept], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_key(key: str) -> None:
    if not _KEY_SHAPE.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 1 to 255 printable ASCII characters, no spaces")


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    """A request made with an ``Idempotency-Key``: whose key, which key, what request."""

    tenant_id: uuid.UUID
    api_key_id: uuid.UUID
    key: str
    fingerprint: str


async def find_answer(
    rows: Repositories, request: KeyedRequest, now: datetime
) -> StoredAnswer | None:
    record = await rows.idempotency.get(request.api_key_id, request.key)
    if record is None or record.expires_at <= now:
        return None
    if record.request_fingerprint != request.fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; use a new key"
        )
    return StoredAnswer(record.response_status, record.response_body)


async def remember_answer(
    uow: UnitOfWork, request: KeyedRequest, answer: StoredAnswer, now: datetime, ttl: timedelta
) -> None:
    await uow.idempotency.delete_expired_key(request.api_key_id, request.key, now)
    uow.idempotency.add(
        IdempotencyRecord(
            id=uuid.uuid4(),
            tenant_id=request.tenant_id,
            api_key_id=request.api_key_id,
            key=request.key,
            request_fingerprint=request.fingerprint,
            response_status=answer.status,
            response_body=answer.body,
            created_at=now,
            expires_at=now + ttl,
        )
    )


class KeyLocks(Protocol):
    def hold(self, api_key_id: uuid.UUID, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the key against other requests using it, for the duration of one request."""
        ...


class RedisKeyLocks:
    # Longer than any request takes; a crashed holder frees the key after it.
    _LEASE_SECONDS = 30
    _WAIT_SECONDS = 10

    def __init__(self, client: redis.Redis, key_prefix: str, keyring: Keyring) -> None:
        self._redis = client
        self._prefix = key_prefix
        self._keyring = keyring

    @asynccontextmanager
    async def hold(self, api_key_id: uuid.UUID, key: str) -> AsyncIterator[None]:
        # Clients put what they like in their keys (an email, an order number): a keyed hash.
        digest = idempotency_lookup(self._keyring, api_key_id, key)
        lock = self._redis.lock(
            f"{self._prefix}idempotency:{digest}",
            timeout=self._LEASE_SECONDS,
            blocking_timeout=self._WAIT_SECONDS,
            sleep=0.02,
        )
        try:
            acquired = await lock.acquire()
        except redis.RedisError as exc:
            raise ServiceUnavailable("cannot take the Idempotency-Key right now") from exc
        if not acquired:
            raise Conflict("a request with this Idempotency-Key is still in progress")
        try:
            yield
        finally:
            # Expired or unreachable: its lease frees it.
            with suppress(LockError, redis.RedisError):
                await lock.release()
