"""``Idempotency-Key``: a repeated request gets the first one's answer instead of a second effect.

Keys are scoped to the API key that used them and kept for ``TWOSTEP_IDEMPOTENCY_TTL_SECONDS``
(24 h). The same key with a different request is refused. A request is fingerprinted without
any one-time code in it — a code is never stored, not even hashed — so for checks the
fingerprint covers which verification, not which code.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.db.models import IdempotencyRecord
from shared.db.session import UnitOfWork
from shared.errors import IdempotencyKeyReused, InvalidInput

_KEY_SHAPE = re.compile(r"^[\x21-\x7e]{1,255}$")
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
    if not _KEY_SHAPE.match(key):
        raise InvalidInput("Idempotency-Key must be 1 to 255 printable ASCII characters, no spaces")


def find_answer(
    uow: UnitOfWork, api_key_id: uuid.UUID, key: str, request_fingerprint: str, now: datetime
) -> StoredAnswer | None:
    record = uow.idempotency.get(api_key_id, key)
    if record is None or record.expires_at <= now:
        return None
    if record.request_fingerprint != request_fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for a different request; use a new key"
        )
    return StoredAnswer(record.response_status, record.response_body)


def remember_answer(
    uow: UnitOfWork,
    api_key_id: uuid.UUID,
    key: str,
    request_fingerprint: str,
    answer: StoredAnswer,
    now: datetime,
    ttl: timedelta,
) -> None:
    uow.idempotency.delete_expired(now, api_key_id=api_key_id, key=key)
    uow.idempotency.add(
        IdempotencyRecord(
            id=uuid.uuid4(),
            api_key_id=api_key_id,
            key=key,
            request_fingerprint=request_fingerprint,
            response_status=answer.status,
            response_body=answer.body,
            created_at=now,
            expires_at=now + ttl,
        )
    )
