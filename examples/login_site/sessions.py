"""Sessions kept on the server, in the site's SQLite file: the cookie carries only a random
session id, the database only that id's SHA-256. Ending a session (sign-out, a password change,
the idle or absolute limit) deletes its row, and a copied cookie then opens nothing.

``SessionMiddleware`` loads the row into ``request.session`` (a plain dict, as Starlette's own
middleware gives) and saves it as the response starts; ``renew(request)`` asks for a new id."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from examples.login_site import words
from examples.login_site.store import connection

# `__Host-`: the browser takes it only with Secure and Path=/ and without Domain, so neither a
# sibling subdomain nor a plain-HTTP page can plant or overwrite it. It needs HTTPS.
SECURE_COOKIE = "__Host-login_site_session"
PLAIN_COOKIE = "login_site_session"
_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 256 random bits
_PURGE_EVERY_SECONDS = 300.0
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sessions (
        id_hash TEXT PRIMARY KEY,
        user_id TEXT,
        data TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_seen REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id)",
    "CREATE INDEX IF NOT EXISTS sessions_last_seen ON sessions (last_seen)",
)
_SCOPE_KEY = "login_site.session"


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class Loaded:
    """What a cookie's id opened: its values, or why it opened nothing."""

    data: dict[str, Any] | None
    ended: str | None = None  # "idle" or "absolute": a signed-in session that ran out


class SessionStore:
    """``clock``: seconds since the epoch; tests move their own."""

    def __init__(
        self,
        path: Path,
        *,
        idle_seconds: float,
        absolute_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path, self.clock = path, clock
        self.idle, self.absolute = idle_seconds, absolute_seconds
        self._purged_at = float("-inf")
        path.parent.mkdir(parents=True, exist_ok=True)
        with connection(path) as db:
            # Every request writes its session: in WAL mode the others' reads need not wait.
            db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                db.execute(statement)

    def load(self, session_id: str) -> Loaded:
        now = self.clock()
        with connection(self.path) as db:
            row = db.execute(
                "SELECT user_id, data, created_at, last_seen FROM sessions WHERE id_hash = ?",
                (_digest(session_id),),
            ).fetchone()
            if row is None:
                return Loaded(None)
            user_id, data, created_at, last_seen = row
            ended = "absolute" if now - created_at > self.absolute else None
            ended = ended or ("idle" if now - last_seen > self.idle else None)
            if ended is None:
                return Loaded(json.loads(data))
            db.execute("DELETE FROM sessions WHERE id_hash = ?", (_digest(session_id),))
        return Loaded(None, ended if user_id else None)

    def create(self, data: dict[str, Any]) -> str:
        """A new session holding ``data``; its id, for the cookie (stored only as a hash)."""
        session_id, now = secrets.token_urlsafe(32), self.clock()
        with connection(self.path) as db:
            db.execute(
                "INSERT INTO sessions (id_hash, user_id, data, created_at, last_seen) "
                "VALUES (?, ?, ?, ?, ?)",
                (_digest(session_id), _user(data), json.dumps(data), now, now),
            )
            if now - self._purged_at > _PURGE_EVERY_SECONDS:
                self._purged_at = now
                self._purge(db, now)
        return session_id

    def save(self, session_id: str, data: dict[str, Any]) -> bool:
        """Whether the session still existed: one ended meanwhile (signed out elsewhere, a
        password change) is never brought back by a request that loaded it before."""
        with connection(self.path) as db:
            updated = db.execute(
                "UPDATE sessions SET user_id = ?, data = ?, last_seen = ? WHERE id_hash = ?",
                (_user(data), json.dumps(data), self.clock(), _digest(session_id)),
            )
        return updated.rowcount == 1

    def delete(self, session_id: str) -> None:
        with connection(self.path) as db:
            db.execute("DELETE FROM sessions WHERE id_hash = ?", (_digest(session_id),))

    def delete_user(self, user_id: str) -> int:
        """End every session of ``user_id``; how many there were."""
        with connection(self.path) as db:
            return db.execute("DELETE FROM sessions WHERE user_id = ?", (user_id,)).rowcount

    def _purge(self, db: sqlite3.Connection, now: float) -> None:
        # Rows of visitors who never came back: nobody else would ever delete them.
        db.execute(
            "DELETE FROM sessions WHERE last_seen < ? OR created_at < ?",
            (now - self.idle, now - self.absolute),
        )


def _user(data: dict[str, Any]) -> str | None:
    user = data.get("user")
    return user if isinstance(user, str) else None


@dataclass
class _Live:
    """The request's session: the id it came with, and whether a new one is due."""

    session_id: str | None
    data: dict[str, Any] = field(default_factory=dict)
    renew: bool = False


def renew(request: Request) -> None:
    """A new session id when this response is sent (the old row goes): for every change of who
    is signed in, so that an id planted or seen before cannot follow the user in or out."""
    live: _Live = request.scope[_SCOPE_KEY]
    live.renew = True


class SessionMiddleware:
    def __init__(
        self, app: ASGIApp, *, store: SessionStore, https_only: bool, exempt: tuple[str, ...]
    ) -> None:
        self.app, self.store, self.exempt = app, store, exempt
        self.cookie = SECURE_COOKIE if https_only else PLAIN_COOKIE
        attributes = f"Path=/; HttpOnly; SameSite=Lax{'; Secure' if https_only else ''}"
        # The cookie outlives nothing on the server: gone from the browser at the absolute limit.
        self._set = f"Max-Age={int(store.absolute)}; {attributes}"
        self._clear = f"Max-Age=0; {attributes}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] != "http" or path.startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        sent = HTTPConnection(scope).cookies.get(self.cookie, "")
        live = await run_in_threadpool(self._open, sent)
        scope["session"], scope[_SCOPE_KEY] = live.data, live

        async def send_saving(message: Message) -> None:
            if message["type"] == "http.response.start":
                cookie = await run_in_threadpool(self._save, live, scope["session"])
                if cookie is not None or (sent and live.session_id is None):
                    value = f"{self.cookie}={cookie or ''}; {self._set if cookie else self._clear}"
                    MutableHeaders(scope=message).append("Set-Cookie", value)
            await send(message)

        await self.app(scope, receive, send_saving)

    def _open(self, sent: str) -> _Live:
        if not _ID.fullmatch(sent):
            return _Live(None)
        loaded = self.store.load(sent)
        if loaded.data is not None:
            return _Live(sent, loaded.data)
        live = _Live(None)
        if loaded.ended is not None:
            why = words.session_ended(loaded.ended, self.store.idle)
            live.data["flash"] = [["info", why]]
        return live

    def _save(self, live: _Live, data: dict[str, Any]) -> str | None:
        """The new id to send, if there is one. An empty session is kept nowhere."""
        if live.session_id is not None and (live.renew or not data):
            self.store.delete(live.session_id)
            live.session_id = None
        if live.session_id is not None:
            if not self.store.save(live.session_id, data):
                live.session_id = None  # ended meanwhile: the browser's cookie goes too
            return None
        return self.store.create(data) if data else None
