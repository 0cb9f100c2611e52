"""Security notices: twostep's webhooks about a user's account (a phone added or removed, new
recovery codes, one used, a lock), kept per user, shown once as a banner at the next sign-in and
listed on the settings page.

The receiver checks every delivery's signature with ``twostep_client.webhooks`` before reading
it, answers at once, and keeps each event once however often it is delivered."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twostep_client import webhooks

from examples.login_site.store import connection

log = logging.getLogger("login_site")

WEBHOOK_PATH = "/twostep/webhooks"
# What a user is told about; twostep's other events (every code sent, …) are answered and
# dropped, so that the endpoint can hear of every event without a list to keep in step.
NOTICE_TYPES = frozenset(
    {
        "factor.added",
        "factor.removed",
        "recovery_codes.generated",
        "recovery_code.used",
        "user.locked",
        "user.unlocked",
    }
)
MAX_BODY = 64 * 1024  # an event is a few hundred bytes
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS notices (
        event_id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL,
        occurred_at TEXT NOT NULL,
        received_at TEXT NOT NULL,
        shown INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX IF NOT EXISTS notices_user ON notices (user_id, occurred_at)",
)


@dataclass(frozen=True)
class Notice:
    event_id: str
    type: str
    data: dict[str, Any]
    occurred_at: datetime


class Notices:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with connection(path) as db:
            for statement in _SCHEMA:
                db.execute(statement)

    def record(self, event: webhooks.WebhookEvent) -> bool:
        """Keep ``event`` for its user; False for a repeat, another type, or a user this site
        does not have (another site sharing the twostep tenant)."""
        user_id = event.data.get("user_id")
        if event.type not in NOTICE_TYPES or not isinstance(user_id, str):
            return False
        with connection(self.path) as db:
            added = db.execute(
                "INSERT OR IGNORE INTO notices "
                "(event_id, user_id, type, data, occurred_at, received_at) "
                "SELECT ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)",
                (
                    event.id,
                    user_id,
                    event.type,
                    json.dumps(event.data),
                    event.created_at.astimezone(UTC).isoformat(),
                    datetime.now(UTC).isoformat(),
                    user_id,
                ),
            )
        return added.rowcount == 1

    def recent(self, user_id: str, limit: int = 20) -> list[Notice]:
        with connection(self.path) as db:
            rows = db.execute(
                "SELECT event_id, type, data, occurred_at FROM notices WHERE user_id = ? "
                "ORDER BY occurred_at DESC LIMIT ?",
                (user_id, limit),
            ).fetchall()
        return [_notice(row) for row in rows]

    def take_unshown(self, user_id: str) -> list[Notice]:
        """The notices not yet shown to the user, oldest first, from now on shown."""
        with connection(self.path) as db:
            rows = db.execute(
                "UPDATE notices SET shown = 1 WHERE user_id = ? AND shown = 0 "
                "RETURNING event_id, type, data, occurred_at",
                (user_id,),
            ).fetchall()
        return sorted((_notice(row) for row in rows), key=lambda notice: notice.occurred_at)


def _notice(row: tuple[str, str, str, str]) -> Notice:
    event_id, kind, data, occurred_at = row
    return Notice(event_id, kind, json.loads(data), datetime.fromisoformat(occurred_at))


class WebhookReceiver:
    """``POST /twostep/webhooks``: no session, no CSRF token (twostep is no browser); the
    signature is what makes a delivery trustworthy."""

    def __init__(self, notices: Notices, secrets: tuple[str, ...]) -> None:
        self.notices, self.secrets = notices, secrets

    def routes(self) -> list[Route]:
        return [Route(WEBHOOK_PATH, self.receive, methods=["POST"])]

    async def receive(self, request: Request) -> Response:
        if not self.secrets:
            return Response(status_code=404)  # off: LOGIN_SITE_WEBHOOK_SECRET is not set
        body = await _body(request.stream())
        if body is None:
            return Response(status_code=413)
        header = request.headers.get(webhooks.SIGNATURE_HEADER, "")
        try:
            event = webhooks.parse(self.secrets, header, body)
        except webhooks.InvalidSignature:
            # Retried by twostep: a secret set wrong here can be fixed without losing events.
            log.warning("a webhook delivery with a bad signature was refused")
            return Response(status_code=401)
        if await run_in_threadpool(self.notices.record, event):
            log.info("security notice %s kept", event.type)
        return Response(status_code=204)


async def _body(chunks: AsyncIterator[bytes]) -> bytes | None:
    """The raw body as signed, or None past ``MAX_BODY`` (read no further)."""
    body = b""
    async for chunk in chunks:
        body += chunk
        if len(body) > MAX_BODY:
            return None
    return body
