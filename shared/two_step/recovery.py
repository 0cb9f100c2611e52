"""Recovery codes: ten one-time codes per user, each a selector (to find the row) and a verifier
(kept as a scrypt hash): one hash per try, whether or not the user has codes, counted by the
same lockout as wrong one-time codes."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from shared.audit import service as audit
from shared.audit.domain import EventType
from shared.audit.service import Subject
from shared.kit.crypto import Keyring
from shared.kit.lookups import user_lookup
from shared.kit.network import normalise_ip
from shared.limits.ports import ActionLimit, Guesser, Lock, Lockout, Outcome
from shared.tenants.models import ApiKey
from shared.two_step.models import RecoveryCode
from shared.two_step.users import validate_user_id
from shared.unit_of_work import Repositories, UnitOfWork
from shared.verifications.events import record_lock
from shared.webhooks.domain import WebhookEvent
from shared.webhooks.outbox import announce

RECOVERY_CODES_PER_SET = 10
# Crockford's base32: no I, L, O or U, so a code read aloud or typed by hand survives.
_RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# XXXX-XXXX-XXXX: a 4-character selector, then an 8-character (40-bit) verifier.
_SELECTOR_LENGTH, _VERIFIER_LENGTH = 4, 8
_RECOVERY_LENGTH = _SELECTOR_LENGTH + _VERIFIER_LENGTH
# Codes made before selectors: 10 characters, the whole code hashed.
_LEGACY_RECOVERY_LENGTH = 10
# scrypt at n=2^14, r=8 costs ~16 MiB and tens of milliseconds per guess.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
# A redemption settles within one scrypt hash; its lockout reservation lasts a little longer.
_REDEMPTION_RESERVATION_SECONDS = 30


@dataclass(frozen=True)
class RecoveryCodes:
    """Built once per process; every method works in the caller's unit of work, on the
    caller's tenant."""

    lockout: Lockout
    sets: ActionLimit
    keyring: Keyring

    async def generate(self, uow: UnitOfWork, api_key: ApiKey, user_id: str) -> list[str]:
        """A new set of codes, replacing the old one. They are shown now and never again."""
        validate_user_id(user_id)
        await self.sets.admit(user_lookup(self.keyring, api_key.tenant_id, user_id))
        codes = _new_recovery_codes()
        # scrypt is slow on purpose: off the event loop, and before any transaction begins.
        hashes = await anyio.to_thread.run_sync(
            lambda: [_hash_secret(code[_SELECTOR_LENGTH:]) for code in codes]
        )
        now = uow.clock.now()
        await uow.recovery_codes.replace_for_user(
            api_key.tenant_id,
            user_id,
            [
                RecoveryCode(
                    id=uuid.uuid4(),
                    tenant_id=api_key.tenant_id,
                    user_id=user_id,
                    selector=code[:_SELECTOR_LENGTH],
                    code_hash=hashed,
                    created_at=now,
                )
                for code, hashed in zip(codes, hashes, strict=True)
            ],
        )
        await audit.record(
            uow,
            EventType.RECOVERY_CODES_GENERATED,
            Subject.of_request(api_key, user_id),
            count=len(codes),
        )
        announce(
            uow, api_key.tenant_id, WebhookEvent.RECOVERY_CODES_GENERATED, user_id, count=len(codes)
        )
        return [_shown(code) for code in codes]

    async def redeem(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        user_id: str,
        code: str,
        client_ip: str | None = None,
    ) -> bool:
        """Spend one recovery code. Wrong codes count towards the same lockout as wrong OTPs;
        each try costs one hash, whatever the user has (a dummy one when nothing matches)."""
        guesser = Guesser(api_key.tenant_id, validate_user_id(user_id))
        attempt = secrets.token_hex(8)
        lockout = self.lockout
        await lockout.reserve(guesser, attempt, _REDEMPTION_RESERVATION_SECONDS)
        typed = _normalise_code(code)
        async with uow.reads() as read:
            candidates = await _candidates(read, api_key.tenant_id, user_id, typed)
        matched = await anyio.to_thread.run_sync(_first_match, typed, candidates)
        ip = normalise_ip(client_ip) if client_ip else None
        now = uow.clock.now()
        if matched is not None and await uow.recovery_codes.use(matched.id, now):
            await lockout.settle(guesser, attempt, Outcome.RIGHT)
            left = await uow.recovery_codes.count_unused(api_key.tenant_id, user_id)
            await audit.record(
                uow,
                EventType.RECOVERY_CODE_USED,
                Subject.of_request(api_key, user_id, client_ip=ip),
                left=left,
            )
            announce(uow, api_key.tenant_id, WebhookEvent.RECOVERY_CODE_USED, user_id, left=left)
            return True
        # A wrong code, or a right one spent by a racing request a moment ago.
        lock = await lockout.settle(
            guesser, attempt, Outcome.WRONG if matched is None else Outcome.VOID
        )
        await _record_rejection(uow, api_key, user_id, ip, lock)
        return False


async def _record_rejection(
    uow: UnitOfWork, api_key: ApiKey, user_id: str, client_ip: str | None, lock: Lock | None
) -> None:
    subject = Subject.of_request(api_key, user_id, client_ip=client_ip)
    await audit.record(uow, EventType.RECOVERY_CODE_REJECTED, subject)
    if lock is not None:
        await record_lock(uow, subject, lock)


def _new_recovery_codes() -> list[str]:
    """A set of codes whose selectors differ, so that a selector finds one row."""
    codes: dict[str, str] = {}
    while len(codes) < RECOVERY_CODES_PER_SET:
        code = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        codes.setdefault(code[:_SELECTOR_LENGTH], code)
    return list(codes.values())


def _shown(code: str) -> str:
    return "-".join(code[start : start + 4] for start in range(0, len(code), 4))


def _normalise_code(code: str) -> str | None:
    cleaned = code.replace("-", "").replace(" ", "").upper()
    if len(cleaned) not in (_RECOVERY_LENGTH, _LEGACY_RECOVERY_LENGTH):
        return None
    if not all(c in _RECOVERY_ALPHABET for c in cleaned):
        return None
    return cleaned


async def _candidates(
    rows: Repositories, tenant_id: uuid.UUID, user_id: str, typed: str | None
) -> Sequence[RecoveryCode]:
    if typed is None:
        return []
    if len(typed) == _LEGACY_RECOVERY_LENGTH:
        return await rows.recovery_codes.unused_candidates(tenant_id, user_id, None)
    return await rows.recovery_codes.unused_candidates(tenant_id, user_id, typed[:_SELECTOR_LENGTH])


def _first_match(typed: str | None, candidates: Sequence[RecoveryCode]) -> RecoveryCode | None:
    """The candidate the typed code opens. Always at least one hash for a well-formed code, so
    that the answer takes as long whether or not the user has a code with that selector."""
    if typed is None:
        return None
    if not candidates:
        _secret_matches(typed, _dummy_hash())
        return None
    for stored in candidates:
        secret = typed if stored.selector is None else typed[_SELECTOR_LENGTH:]
        if _secret_matches(secret, stored.code_hash):
            return stored
    return None


@functools.cache
def _dummy_hash() -> str:
    return _hash_secret(secrets.token_hex(8))


def _hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _secret_matches(secret: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        computed = hashlib.scrypt(
            secret.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(computed.hex(), digest)
