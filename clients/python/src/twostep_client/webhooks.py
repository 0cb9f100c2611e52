"""Receiving twostep's webhooks: check the ``Twostep-Signature`` header before trusting a
delivery, then read it.

::

    event = twostep_client.webhooks.parse(
        secret, request.headers["Twostep-Signature"], await request.body()
    )  # raises InvalidSignature for a forged, tampered or replayed (older than 5 min) one
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from twostep_client._errors import TwostepError

SIGNATURE_HEADER = "Twostep-Signature"
TOLERANCE_SECONDS = 300


class InvalidSignature(TwostepError):
    """Not signed with the secret, altered on the way, older than the tolerance, or not an
    event at all."""


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str  # verification.approved, check.rejected, …
    created_at: datetime
    data: dict[str, Any]  # the verification or check as the API shows it


def verify_signature(
    secrets: str | Iterable[str],
    header: str,
    body: bytes,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether ``header`` signs ``body`` (the raw bytes, before any JSON parsing) under one of
    ``secrets`` (during a rotation, pass the new and the old), and is recent enough."""
    fields = [field.split("=", 1) for field in header.split(",") if "=" in field]
    stamps = [value.strip() for key, value in fields if key.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    moment = time.time() if now is None else now
    if abs(moment - int(stamps[0])) > tolerance:
        return False  # a replay of an old delivery
    signatures = [value.strip() for key, value in fields if key.strip() == "v1"]
    signed = stamps[0].encode() + b"." + body
    for secret in [secrets] if isinstance(secrets, str) else list(secrets):
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, signature) for signature in signatures):
            return True
    return False


def parse(
    secrets: str | Iterable[str],
    header: str,
    body: bytes,
    *,
    tolerance: float = TOLERANCE_SECONDS,
) -> WebhookEvent:
    """The delivery's event, once its signature holds; ``InvalidSignature`` otherwise."""
    if not verify_signature(secrets, header, body, tolerance=tolerance):
        raise InvalidSignature("the Twostep-Signature does not match this body")
    try:
        event = json.loads(body)
        return WebhookEvent(
            id=str(event["id"]),
            type=str(event["type"]),
            created_at=datetime.fromisoformat(str(event["created_at"])),
            data=dict(event["data"]),
        )
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidSignature(f"signed, but not a twostep event: {error}") from error
