"""Where a code the user typed waits for the worker that checks it.

A code must never reach the database, a log line, a task message or Flower, so the API puts it
here, under the check's id, for no longer than the check can take; the job carries only the id.
It is stored encrypted under the data keys (a Redis dump shows no code) and deleted on every
path that ends the check. If Redis loses it, the check ends ``failed`` with ``code_unavailable``
and no attempt is spent at the provider: the user types the code again. An authenticator app's
new secret waits here too, under its enrolment's id, until the worker hands it to Twilio.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol

import redis.asyncio as redis

from shared.errors import ServiceUnavailable
from shared.kit.crypto import Keyring


class CodeStash(Protocol):
    async def put(self, check_id: uuid.UUID, code: str, ttl_seconds: int) -> None: ...

    async def get(self, check_id: uuid.UUID) -> str | None: ...

    async def discard(self, *check_ids: uuid.UUID) -> None: ...

    async def claim_once(self, name: str, ttl_seconds: int) -> bool:
        """True the first time ``name`` is claimed within ``ttl_seconds``, False after (an
        authenticator app's code approved once is not approved again)."""
        ...


class RedisCodeStash:
    def __init__(self, client: redis.Redis, key_prefix: str, keyring: Keyring) -> None:
        self._redis = client
        self._keyring = keyring
        self._key = key_prefix + "check-code:{}"
        self._used = key_prefix + "code-used:{}"

    async def put(self, check_id: uuid.UUID, code: str, ttl_seconds: int) -> None:
        sealed = self._keyring.encrypt(code)
        try:
            await self._redis.set(self._key.format(check_id), sealed, ex=ttl_seconds)
        except redis.RedisError as exc:
            raise ServiceUnavailable("cannot accept checks right now; try again shortly") from exc

    async def get(self, check_id: uuid.UUID) -> str | None:
        value = await self._redis.get(self._key.format(check_id))
        if value is None:
            return None
        return self._keyring.decrypt(value.decode() if isinstance(value, bytes) else str(value))

    async def discard(self, *check_ids: uuid.UUID) -> None:
        if check_ids:
            await self._redis.delete(*self._keys(check_ids))

    async def claim_once(self, name: str, ttl_seconds: int) -> bool:
        return bool(await self._redis.set(self._used.format(name), 1, nx=True, ex=ttl_seconds))

    def _keys(self, check_ids: Iterable[uuid.UUID]) -> list[str]:
        return [self._key.format(check_id) for check_id in check_ids]
