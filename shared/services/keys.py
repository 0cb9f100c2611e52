"""API keys: created and revoked from the command line, presented as Bearer tokens.

Keys are 256-bit random and stored as SHA-256. Each API process remembers a key's look-up for
``TWOSTEP_API_KEY_CACHE_SECONDS`` (5 s), so a request rarely touches the database to
authenticate, and a revoked key stops working within that time.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence

from cachetools import TTLCache

from shared.clock import utcnow
from shared.db.models import ApiKey
from shared.db.session import UnitOfWork
from shared.errors import Conflict, InvalidInput, NotFound, Unauthorized

KEY_PREFIX = "tsk_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Bounds the memory a flood of made-up keys can take; each entry is a hash and a row or None.
_CACHE_ENTRIES = 10_000


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


async def create_api_key(uow: UnitOfWork, name: str) -> tuple[ApiKey, str]:
    """Make a key; the plaintext is returned once and never stored."""
    if not _NAME.match(name):
        raise InvalidInput("a key name is 1-100 letters, digits, '.', '_' or '-'")
    if await uow.api_keys.get_by_name(name) is not None:
        raise Conflict(f"an API key named {name!r} exists already")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=uuid.uuid4(),
        name=name,
        key_hash=hash_key(plaintext),
        key_prefix=plaintext[:12],
        created_at=utcnow(),
    )
    uow.api_keys.add(key)
    return key, plaintext


async def list_api_keys(uow: UnitOfWork) -> Sequence[ApiKey]:
    return await uow.api_keys.list_all()


async def revoke_api_key(uow: UnitOfWork, name: str) -> ApiKey:
    key = await uow.api_keys.get_by_name(name)
    if key is None:
        raise NotFound(f"no API key named {name!r}")
    await uow.api_keys.revoke(key.id, utcnow())
    return key


def bearer_key_hash(authorization: str | None) -> str:
    """The hash of the key in an ``Authorization: Bearer <key>`` header, if it has the shape."""
    if not authorization:
        raise Unauthorized("an API key is required: Authorization: Bearer <key>")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX) or len(token) > 200:
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    return hash_key(token)


async def authenticate(uow: UnitOfWork, authorization: str | None) -> ApiKey:
    """Resolve an ``Authorization: Bearer <key>`` header to a live key."""
    key = await uow.api_keys.get_active_by_hash(bearer_key_hash(authorization))
    if key is None:
        raise Unauthorized("unknown or revoked API key")
    return key


class ApiKeyCache:
    """Looks keys up at most once per ``ttl_seconds`` per process. Concurrent requests with a key
    not seen yet share one look-up instead of each asking the database."""

    def __init__(
        self,
        reading: Callable[[], UnitOfWork],
        ttl_seconds: float,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reading = reading
        self._ttl = ttl_seconds
        self._known: TTLCache[str, ApiKey | None] = TTLCache(
            _CACHE_ENTRIES, ttl=ttl_seconds or 1, timer=timer
        )
        self._looking: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def authenticate(self, authorization: str | None) -> ApiKey:
        key_hash = bearer_key_hash(authorization)
        if self._ttl > 0 and key_hash in self._known:
            key = self._known[key_hash]
        else:
            key = await self._look_up(key_hash)
        if key is None:
            raise Unauthorized("unknown or revoked API key")
        return key

    async def _look_up(self, key_hash: str) -> ApiKey | None:
        pending = self._looking.get(key_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ApiKey | None] = asyncio.get_running_loop().create_future()
        self._looking[key_hash] = future
        try:
            async with self._reading() as uow:
                key = await uow.api_keys.get_active_by_hash(key_hash)
            self._known[key_hash] = key
            future.set_result(key)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: those sharing it get it raised, others need not
            raise
        finally:
            del self._looking[key_hash]
        return key
