"""Webhook signatures: ``Twostep-Signature: t=<unix seconds>,v1=<hex>``, where each ``v1`` is
HMAC-SHA256 of ``"<t>.<raw body>"`` under one of the endpoint's secrets (two during a secret's
rotation). The verifier here does what the one docs/webhooks.md shows receivers does."""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Twostep-Signature"


def sign(secrets: list[str], body: bytes, timestamp: int | None = None) -> str:
    t = str(int(time.time()) if timestamp is None else timestamp)
    signed = t.encode() + b"." + body
    macs = [hmac.new(s.encode(), signed, hashlib.sha256).hexdigest() for s in secrets]
    return ",".join([f"t={t}", *(f"v1={mac}" for mac in macs)])


def verify_twostep_signature(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    fields = [field.split("=", 1) for field in header.split(",") if "=" in field]
    stamps = [value for key, value in fields if key == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(time.time() - int(stamps[0])) > tolerance:
        return False  # no timestamp, or too old: a replay
    signed = stamps[0].encode() + b"." + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, value in fields if key == "v1")
