"""API keys: created and revoked from the command line, presented as Bearer tokens.

A key belongs to one tenant and holds scopes (``verify``, ``users``, ``users:manage``,
``admin``): it sees only its tenant's rows and may do only what its scopes allow. Keys are
256-bit random and stored as SHA-256. Each API process remembers a key's look-up for
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
from collections.abc import Callable, Iterable, Sequence

from cachetools import TTLCache

from shared.errors import Conflict, InsufficientScope, InvalidInput, NotFound, Unauthorized
from shared.tenants.domain import ALL_SCOPES, DEFAULT_TENANT, Scope
from shared.tenants.models import ApiKey
from shared.unit_of_work import UnitOfWork

KEY_PREFIX = "tsk_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Bounds the memory a flood of made-up keys can take; each entry is a hash and a row or None.
_CACHE_ENTRIES = 10_000


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def parse_scopes(text: str | Iterable[str]) -> frozenset[Scope]:
    """``"verify,users"`` (or the words one by one) as scopes; an unknown word is refused."""
    words = text.split(",") if isinstance(text, str) else list(text)
    try:
        scopes = frozenset(Scope(word.strip()) for word in words if word.strip())
    except ValueError:
        known = ", ".join(sorted(ALL_SCOPES))
        raise InvalidInput(f"scopes are some of: {known}") from None
    if not scopes:
        raise InvalidInput("a key needs at least one scope")
    return scopes


def require_scope(key: ApiKey, scope: Scope) -> ApiKey:
    if scope.value not in key.scopes.split(","):
        raise InsufficientScope(f"this API key lacks the {scope.value!r} scope")
    return key


async def create_api_key(
    uow: UnitOfWork,
    name: str,
    *,
    tenant: str = DEFAULT_TENANT,
    scopes: Iterable[Scope] = ALL_SCOPES,
) -> tuple[ApiKey, str]:
    """Make a key of ``tenant`` (created on first use); the plaintext is returned once and
    never stored."""
    if not _NAME.match(name):
        raise InvalidInput("a key name is 1-100 letters, digits, '.', '_' or '-'")
    if not _TENANT.match(tenant):
        raise InvalidInput("a tenant name is 1-64 letters, digits, '.', '_' or '-'")
    chosen = parse_scopes(scopes)
    if await uow.api_keys.get_by_name(name) is not None:
        raise Conflict(f"an API key named {name!r} exists already")
    now = uow.clock.now()
    owner = await uow.tenants.get_or_create(tenant, now)
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        id=uuid.uuid4(),
        name=name,
        tenant_id=owner.id,
        scopes=",".join(sorted(chosen)),
        key_hash=hash_key(plaintext),
        key_prefix=plaintext[:12],
        created_at=now,
    )
    uow.api_keys.add(key)
    return key, plaintext


async def list_api_keys(uow: UnitOfWork) -> tuple[Sequence[ApiKey], dict[uuid.UUID, str]]:
    """Every key, and the names of the tenants they belong to."""
    return await uow.api_keys.list_all(), await uow.tenants.names()


async def revoke_api_key(uow: UnitOfWork, name: str) -> ApiKey:
    key = await uow.api_keys.get_by_name(name)
    if key is None:
        raise NotFound(f"no API key named {name!r}")
    await uow.api_keys.revoke(key.id, uow.clock.now())
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
