"""Personal data at rest: phone numbers and client IPs encrypted, found again by keyed hashes.

- **Encryption** is Fernet (AES-128-CBC with HMAC-SHA256, authenticated) from ``cryptography``,
  through ``MultiFernet`` over ``TWOSTEP_DATA_KEYS``: the first key encrypts, every key decrypts,
  so a new key goes first and the old ones stay until ``twostep rekey`` has re-encrypted the rows.
- **Look-ups** cannot use ciphertext (every encryption of a value differs), so a column that is
  searched by equality has a *blind index* beside it: HMAC-SHA256 of the value under
  ``TWOSTEP_LOOKUP_KEY``, a separate secret. Redis key names are blind indexes too. Without that
  secret a dump's hashes cannot be reversed by hashing every phone number (an unkeyed hash of a
  number can: there are only ~10^10 of them per country).

Every value is bound to what it names (``"phone"``, a tenant id, …) so equal strings of
different kinds, or of different tenants, never share a hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Dialect, String, TypeDecorator

from shared.kit.settings import MissingSecrets, Settings, get_settings

# Development keys: public, so that a laptop needs no set-up. Production refuses them.
DEVELOPMENT_DATA_KEY = base64.urlsafe_b64encode(
    hashlib.sha256(b"twostep development data key - not secret").digest()
).decode()
DEVELOPMENT_LOOKUP_KEY = "twostep-development-lookup-key-not-secret"

_SEPARATOR = "\x1f"  # the ASCII unit separator: never part of a phone number, an IP or an id


class UnreadableData(Exception):
    """A value in the database was encrypted under none of the configured data keys."""


class Keyring:
    """The data keys and the look-up key of one deployment."""

    def __init__(self, data_keys: Sequence[str], lookup_key: str) -> None:
        if not data_keys:
            raise ValueError("at least one data key is needed")
        self._fernet = MultiFernet([Fernet(key.encode()) for key in data_keys])
        self._lookup_key = lookup_key.encode()

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise UnreadableData("a value was encrypted under none of TWOSTEP_DATA_KEYS") from None

    def rotate(self, token: str) -> str:
        """The same plaintext encrypted under the first key (``twostep rekey``)."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken:
            raise UnreadableData("a value was encrypted under none of TWOSTEP_DATA_KEYS") from None

    def blind_index(self, kind: str, *parts: str) -> str:
        """A keyed hash naming ``parts`` (e.g. a tenant and a phone number) for look-ups."""
        message = _SEPARATOR.join((kind, *parts)).encode()
        return hmac.new(self._lookup_key, message, hashlib.sha256).hexdigest()


def generate_data_key() -> str:
    return Fernet.generate_key().decode()


@lru_cache(maxsize=8)
def keyring_for(data_keys: tuple[str, ...], lookup_key: str) -> Keyring:
    return Keyring(data_keys, lookup_key)


_installed: Keyring | None = None


def install(keyring: Keyring) -> None:
    """Make ``keyring`` the one encrypted columns use in this process. The composition roots
    (API, worker, command line) install the keyring of their settings before they touch rows."""
    global _installed
    _installed = keyring


def installed() -> Keyring:
    if _installed is None:
        # A process that did not install one (a script, a migration run by Alembic itself)
        # uses its environment's settings, which refuse to give development keys in production.
        install(keyring_of(get_settings()))
    assert _installed is not None
    return _installed


class EncryptedString(TypeDecorator[str]):
    """A string column stored encrypted; Python code sees the plaintext.

    Never compare such a column in SQL: every encryption differs. Search its blind index.
    """

    impl = String
    cache_ok = True

    def __init__(self, length: int | None = 255) -> None:
        # A Fernet token is about 4/3 of (its plaintext + 73 bytes): 255 holds 120 bytes, an
        # email address (254) needs 512. None: unbounded (TEXT).
        super().__init__(length)

    def process_bind_param(self, value: str | None, _dialect: Dialect) -> str | None:
        return None if value is None else installed().encrypt(value)

    def process_result_value(self, value: Any, _dialect: Dialect) -> str | None:
        return None if value is None else installed().decrypt(str(value))


def keyring_of(settings: Settings) -> Keyring:
    """The keys of personal data. Without configured keys, development uses public ones and
    production refuses to run."""
    data_keys = tuple(key.get_secret_value() for key in settings.data_keys)
    lookup_key = settings.lookup_key.get_secret_value() if settings.lookup_key else None
    if not data_keys or lookup_key is None:
        if not settings.development:
            raise MissingSecrets(
                "TWOSTEP_DATA_KEYS and TWOSTEP_LOOKUP_KEY must be set in production "
                "(or set TWOSTEP_ENVIRONMENT=development on a laptop)"
            )
        data_keys = data_keys or (DEVELOPMENT_DATA_KEY,)
        lookup_key = lookup_key or DEVELOPMENT_LOOKUP_KEY
    return keyring_for(data_keys, lookup_key)
