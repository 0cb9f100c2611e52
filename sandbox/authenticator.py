"""A passkey authenticator in Python, standing in for the user's device as the sandbox does for
Twilio: what a browser's ``navigator.credentials`` answers, for passkeys without a browser
(tests, ``twostep bench --scenario passkey``, a script against ``twostep dev``). Built by the
rules of WebAuthn Level 2 (§6.1 authenticator data, §6.5 attestation objects, §8.2 ``packed``
self attestation, §8.7 ``none``) with an ES256 key of its own.

Every answer can be tampered with as an attacker would: another origin, another challenge, a
replayed signature counter, no user verification.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

_USER_PRESENT, _USER_VERIFIED, _ATTESTED = 0x01, 0x04, 0x40
_ES256 = -7


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Passkey:
    """One credential: its id, its key, the RP it belongs to and its signature counter."""

    rp_id: str
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(16))
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,
                3: _ES256,
                -1: 1,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )


@dataclass
class Authenticator:
    """A platform authenticator that verifies its user (a fingerprint, a face)."""

    attestation: str = "none"  # or "packed" (self attestation)
    verifies_user: bool = True
    passkeys: list[Passkey] = field(default_factory=list)

    def register(
        self, creation_options: dict[str, Any], origin: str, *, rp_id: str | None = None
    ) -> dict[str, Any]:
        """``navigator.credentials.create()``: a new passkey for the RP the options name, as
        the ``PublicKeyCredential``'s JSON (base64url for binary fields)."""
        rp_id = rp_id or creation_options["rp"]["id"]
        passkey = Passkey(rp_id)
        client_data = self._client_data("webauthn.create", creation_options["challenge"], origin)
        auth_data = self._auth_data(passkey, attested=True)
        statement: dict[str, Any] = {}
        if self.attestation == "packed":
            signed = auth_data + hashlib.sha256(client_data).digest()
            statement = {"alg": _ES256, "sig": passkey.key.sign(signed, ec.ECDSA(hashes.SHA256()))}
        attestation = cbor2.dumps(
            {"fmt": self.attestation, "attStmt": statement, "authData": auth_data}
        )
        self.passkeys.append(passkey)
        return _credential(
            passkey,
            {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
             "transports": ["internal"]},
        )  # fmt: skip

    def sign_in(
        self,
        request_options: dict[str, Any],
        origin: str,
        *,
        challenge: str | None = None,
        sign_count: int | None = None,
    ) -> dict[str, Any]:
        """``navigator.credentials.get()``: an assertion by the first of its passkeys that the
        options allow. ``challenge`` and ``sign_count`` replace the real ones (a tampered or
        replayed answer)."""
        allowed = {from_b64url(c["id"]) for c in request_options.get("allowCredentials", [])}
        passkey = next(
            p for p in self.passkeys
            if p.rp_id == request_options["rpId"] and (not allowed or p.credential_id in allowed)
        )  # fmt: skip
        passkey.sign_count += 1
        client_data = self._client_data(
            "webauthn.get", challenge or request_options["challenge"], origin
        )
        auth_data = self._auth_data(passkey, sign_count=sign_count)
        signature = passkey.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return _credential(
            passkey,
            {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
             "signature": b64url(signature), "userHandle": None},
        )  # fmt: skip

    def _client_data(self, kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def _auth_data(
        self, passkey: Passkey, *, attested: bool = False, sign_count: int | None = None
    ) -> bytes:
        flags = _USER_PRESENT | (_USER_VERIFIED if self.verifies_user else 0)
        count = passkey.sign_count if sign_count is None else sign_count
        data = hashlib.sha256(passkey.rp_id.encode()).digest()
        data += bytes([flags | (_ATTESTED if attested else 0)]) + struct.pack(">I", count)
        if attested:
            credential = passkey.credential_id
            data += bytes(16) + struct.pack(">H", len(credential)) + credential
            data += passkey.cose_public_key()
        return data


def _credential(passkey: Passkey, response: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": b64url(passkey.credential_id),
        "rawId": b64url(passkey.credential_id),
        "type": "public-key",
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
        "response": response,
    }
