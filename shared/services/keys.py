"""API keys: created and revoked from the command line, presented as Bearer tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from collections.abc import Sequence

from shared.clock import utcnow
from shared.db.models import ApiKey
from shared.db.session import UnitOfWork
from shared.errors import Conflict, InvalidInput, NotFound, Unauthorized

KEY_PREFIX = "tsk_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_api_key(uow: UnitOfWork, name: str) -> tuple[ApiKey, str]:
    """Make a key; the plaintext is returned once and never stored."""
    if not _NAME.match(name):
        raise InvalidInput("a key name is 1-100 letters, digits, '.', '_' or '-'")
    if uow.api_keys.get_by_name(name) is not None:
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


def list_api_keys(uow: UnitOfWork) -> Sequence[ApiKey]:
    return uow.api_keys.list_all()


def revoke_api_key(uow: UnitOfWork, name: str) -> ApiKey:
    key = uow.api_keys.get_by_name(name)
    if key is None:
        raise NotFound(f"no API key named {name!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
    return key


def authenticate(uow: UnitOfWork, authorization: str | None) -> ApiKey:
    """Resolve an ``Authorization: Bearer <key>`` header to a live key."""
    if not authorization:
        raise Unauthorized("an API key is required: Authorization: Bearer <key>")
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(KEY_PREFIX) or len(token) > 200:
        raise Unauthorized("the Authorization header must be 'Bearer <key>'")
    key = uow.api_keys.get_active_by_hash(hash_key(token))
    if key is None:
        raise Unauthorized("unknown or revoked API key")
    return key
