"""The site's own users, in SQLite, with scrypt password hashes. Synchronous: the pages call it
in a worker thread (hashing is slow on purpose)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# RFC 7914's interactive-login parameters: about 16 MiB and tens of milliseconds per hash.
_N, _R, _P = 2**14, 8, 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


class EmailTaken(Exception):
    pass


@dataclass(frozen=True)
class User:
    # Random, not a row number: it is the id twostep knows the user by, and a site whose
    # database is wiped must not hand an old user's second step to a new user 1.
    id: str
    email: str


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _N, _R, _P)
    return f"scrypt${_N}${_R}${_P}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    typed = _scrypt(password, bytes.fromhex(salt), int(n), int(r), int(p))
    return hmac.compare_digest(typed, bytes.fromhex(digest))


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)


# Compared against when the email is unknown, so that a wrong email costs what a wrong
# password costs and the timing tells nobody which emails have accounts.
_NOBODY = hash_password(secrets.token_urlsafe(16))


@contextlib.contextmanager
def connection(path: Path) -> Iterator[sqlite3.Connection]:
    """One connection per call, one transaction: the pages call from whichever worker thread
    is free. Users, sessions and notices share the file."""
    with contextlib.closing(sqlite3.connect(path, timeout=10)) as db, db:
        yield db


class Users:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            db.execute(_SCHEMA)

    def _connection(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return connection(self.path)

    def create(self, email: str, password: str) -> User:
        user = User(id=uuid.uuid4().hex, email=email)
        try:
            with self._connection() as db:
                db.execute(
                    "INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)",
                    (user.id, email, hash_password(password), datetime.now(UTC).isoformat()),
                )
        except sqlite3.IntegrityError as exc:
            raise EmailTaken(email) from exc
        return user

    def authenticate(self, email: str, password: str) -> User | None:
        with self._connection() as db:
            row = db.execute(
                "SELECT id, password_hash FROM users WHERE email = ?", (email,)
            ).fetchone()
        if row is None:
            password_matches(password, _NOBODY)
            return None
        return User(id=row[0], email=email) if password_matches(password, row[1]) else None

    def get(self, user_id: str) -> User | None:
        with self._connection() as db:
            row = db.execute("SELECT email FROM users WHERE id = ?", (user_id,)).fetchone()
        return None if row is None else User(id=user_id, email=row[0])

    def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """``password_hash`` from ``hash_password``: hashed before a second step is asked for,
        so that the new password itself waits nowhere."""
        with self._connection() as db:
            db.execute("UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id))
