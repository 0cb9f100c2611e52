"""Two-step authentication for a login server's users (the seed article's two flows).

Enrolment: a phone is stored *unverified* and a verification starts; only its approval verifies
the factor and turns 2SA on, so a typo never locks anyone out. A new phone replaces the old one
only once it is verified itself. An enrolment answers the same whether or not the phone is
enrolled elsewhere; a phone verified for another user of the tenant fails only at approval, as
``factor.enrollment_failed``, so nobody learns which phones are enrolled. Login: a challenge is a
verification to the user's verified factor; the decision is the verification's, approved only
after an approved check. Recovery codes: ten one-time codes, each a selector (to find the row)
and a verifier (kept as a scrypt hash): one hash per try, counted by the same lockout as codes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import structlog

from shared.audit import service as audit
from shared.audit.domain import EventType
from shared.audit.models import Event
from shared.audit.service import Subject
from shared.errors import InvalidInput, NotFound, NoVerifiedFactor
from shared.kit.changes import Announcement
from shared.kit.crypto import Keyring
from shared.kit.jobs import Job
from shared.kit.lookups import phone_lookup, user_lookup
from shared.kit.network import normalise_ip
from shared.kit.phone import parse_phone
from shared.limits.ports import Guesser, Lock, Outcome, SendRequest
from shared.tenants.models import ApiKey
from shared.two_step.domain import FactorStatus
from shared.two_step.models import Factor, RecoveryCode
from shared.two_step.views import factor_view
from shared.unit_of_work import Repositories, UnitOfWork
from shared.verifications.domain import Channel, Purpose
from shared.verifications.models import Verification
from shared.verifications.service import VerificationRequest, Verifications
from shared.verifications.views import change_of
from shared.webhooks.domain import WebhookEvent

log = structlog.get_logger(__name__)

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
_USER_ID_MAX = 128
# 1 to 128 characters, none a control, format (bidi overrides, zero-width), line-break, non-ASCII
# space or private-use character of the BMP. A fixed list rather than isprintable(), whose answer
# for unassigned code points moves with Python's Unicode version and which no JSON Schema
# pattern can spell: the OpenAPI document carries this very pattern, and validators agree on it.
USER_ID_PATTERN = (
    r"^[^\x00-\x1f\x7f-\xa0\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u1680\u180e"
    r"\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u206f\u3000\ue000-\uf8ff\ufeff\ufff9-\ufffb]"
    rf"{{1,{_USER_ID_MAX}}}$"
)
_USER_ID_SHAPE = re.compile(USER_ID_PATTERN)
# A redemption settles within one scrypt hash; its lockout reservation lasts a little longer.
_REDEMPTION_RESERVATION_SECONDS = 30


@dataclass(frozen=True, slots=True)
class FactorList:
    user_id: str
    two_step_enabled: bool
    factors: Sequence[Factor]


@dataclass(frozen=True, slots=True)
class Enrollment:
    phone: str
    channel: Channel = Channel.SMS
    replace_existing: bool = True
    client_ip: str | None = None


def is_user_id(value: str) -> bool:
    return _USER_ID_SHAPE.fullmatch(value) is not None


def validate_user_id(user_id: str) -> str:
    if not is_user_id(user_id):
        raise InvalidInput(f"a user_id is 1 to {_USER_ID_MAX} printable characters")
    return user_id


@dataclass(frozen=True)
class TwoStep:
    """Built once per process; every method works in the caller's unit of work, on the
    caller's tenant."""

    verifications: Verifications
    keyring: Keyring

    async def enroll(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str, enrollment: Enrollment
    ) -> tuple[Factor, Verification]:
        """Store the phone unverified and send it a code; approving that code verifies it."""
        validate_user_id(user_id)
        parsed = parse_phone(enrollment.phone)
        verification = await self.verifications.request(
            uow,
            api_key,
            VerificationRequest(
                to=parsed.e164,
                channel=enrollment.channel,
                user_id=user_id,
                client_ip=enrollment.client_ip,
                purpose=Purpose.ENROLLMENT,
            ),
        )
        factor = Factor(
            id=uuid.uuid4(),
            tenant_id=api_key.tenant_id,
            user_id=user_id,
            phone_e164=parsed.e164,
            phone_lookup=phone_lookup(self.keyring, api_key.tenant_id, parsed.e164),
            destination_region=parsed.region,
            channel=enrollment.channel,
            status=FactorStatus.UNVERIFIED,
            enrollment_verification_id=verification.id,
            replaces_others=enrollment.replace_existing,
            created_at=verification.created_at,
            updated_at=verification.created_at,
        )
        uow.factors.add(factor)
        await _record_factor(
            uow,
            EventType.FACTOR_ENROLLMENT_STARTED,
            factor,
            api_key.id,
            client_ip=verification.client_ip,
        )
        return factor, verification

    async def list_factors(self, uow: UnitOfWork, api_key: ApiKey, user_id: str) -> FactorList:
        validate_user_id(user_id)
        factors = await uow.factors.list_for_user(api_key.tenant_id, user_id)
        enabled = any(factor.status is FactorStatus.VERIFIED for factor in factors)
        return FactorList(user_id, enabled, factors)

    async def disable_factor(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str, factor_id: uuid.UUID
    ) -> Factor:
        """Disable a factor; a pending enrolment for it is canceled too. Disabling twice is
        fine."""
        factor = await uow.factors.get(api_key.tenant_id, validate_user_id(user_id), factor_id)
        if factor is None:
            raise NotFound(f"no factor {factor_id} for this user")
        if factor.status is FactorStatus.DISABLED:
            return factor
        now = self.verifications.clock.now()
        await uow.factors.disable(factor.id, now)
        if factor.enrollment_verification_id is not None:
            canceled = await uow.verifications.cancel(
                factor.tenant_id, factor.enrollment_verification_id, now
            )
            if canceled is not None:
                uow.notify_after_commit(change_of(canceled))
                if canceled.provider_open:  # over here, so over at Twilio too
                    uow.enqueue_after_commit(Job.close_verification(canceled.id))
        await _record_factor(uow, EventType.FACTOR_DISABLED, factor, api_key.id)
        if factor.status is FactorStatus.VERIFIED:
            _announce_factor(uow, WebhookEvent.FACTOR_REMOVED, factor, FactorStatus.DISABLED)
        return factor

    async def start_challenge(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        user_id: str,
        channel: Channel | None = None,
        client_ip: str | None = None,
    ) -> Verification:
        """Send a login code to the user's verified factor (its channel, or the one asked for)."""
        async with uow.reads() as read:
            factor = await read.factors.latest_verified(
                api_key.tenant_id, validate_user_id(user_id)
            )
        if factor is None:
            # Asking whether a user has 2SA costs what a send costs: no free probing.
            await self.verifications.guards.sends.admit(
                SendRequest(
                    tenant_id=api_key.tenant_id,
                    api_key_id=api_key.id,
                    destination=None,
                    region=None,
                    user_id=user_id,
                    client_ip=normalise_ip(client_ip) if client_ip else None,
                )
            )
            raise NoVerifiedFactor("two-step authentication is not on for this user")
        verification = await self.verifications.request(
            uow,
            api_key,
            VerificationRequest(
                to=factor.phone_e164,
                channel=channel or factor.channel,
                user_id=user_id,
                client_ip=client_ip,
                purpose=Purpose.LOGIN,
            ),
        )
        await _record_factor(
            uow,
            EventType.CHALLENGE_REQUESTED,
            factor,
            api_key.id,
            client_ip=verification.client_ip,
            verification_id=verification.id,
        )
        return verification

    async def generate_recovery_codes(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str
    ) -> list[str]:
        """A new set of codes, replacing the old one. They are shown now and never again."""
        validate_user_id(user_id)
        await self.verifications.guards.recovery_code_sets.admit(
            user_lookup(self.keyring, api_key.tenant_id, user_id)
        )
        codes = _new_recovery_codes()
        # scrypt is slow on purpose: off the event loop, and before any transaction begins.
        hashes = await anyio.to_thread.run_sync(
            lambda: [_hash_secret(code[_SELECTOR_LENGTH:]) for code in codes]
        )
        now = self.verifications.clock.now()
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
        _announce(
            uow, api_key.tenant_id, WebhookEvent.RECOVERY_CODES_GENERATED, user_id, count=len(codes)
        )
        return [_shown(code) for code in codes]

    async def redeem_recovery_code(
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
        lockout = self.verifications.guards.lockout
        await lockout.reserve(guesser, attempt, _REDEMPTION_RESERVATION_SECONDS)
        typed = _normalise_code(code)
        async with uow.reads() as read:
            candidates = await _candidates(read, api_key.tenant_id, user_id, typed)
        matched = await anyio.to_thread.run_sync(_first_match, typed, candidates)
        ip = normalise_ip(client_ip) if client_ip else None
        now = self.verifications.clock.now()
        if matched is not None and await uow.recovery_codes.use(matched.id, now):
            await lockout.settle(guesser, attempt, Outcome.RIGHT)
            left = await uow.recovery_codes.count_unused(api_key.tenant_id, user_id)
            await audit.record(
                uow,
                EventType.RECOVERY_CODE_USED,
                Subject.of_request(api_key, user_id, client_ip=ip),
                left=left,
            )
            _announce(uow, api_key.tenant_id, WebhookEvent.RECOVERY_CODE_USED, user_id, left=left)
            return True
        # A wrong code, or a right one spent by a racing request a moment ago.
        lock = await lockout.settle(
            guesser, attempt, Outcome.WRONG if matched is None else Outcome.VOID
        )
        await _record_rejection(uow, api_key, user_id, ip, lock)
        return False

    async def release_lockout(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        user_id: str | None,
        phone: str | None,
        client_ip: str | None = None,
    ) -> None:
        """Lift a user's, a number's or a client address's lockout, hard ones included (an
        admin's decision)."""
        if user_id is None and phone is None and client_ip is None:
            raise InvalidInput("name a user_id, a phone or a client_ip")
        e164 = parse_phone(phone).e164 if phone is not None else None
        ip = normalise_ip(client_ip) if client_ip else None
        user = validate_user_id(user_id) if user_id else None
        await self.verifications.guards.lockout.release(Guesser(api_key.tenant_id, user, e164, ip))
        await audit.record(
            uow,
            EventType.LOCKOUT_RELEASED,
            Subject.of_request(api_key, user_id, phone_e164=e164, client_ip=ip),
        )
        if user_id is not None:
            _announce(uow, api_key.tenant_id, WebhookEvent.USER_UNLOCKED, user_id)

    async def list_events(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str, *, before: int | None, limit: int
    ) -> Sequence[tuple[Event, str | None]]:
        return await uow.events.page_for_user(
            api_key.tenant_id, validate_user_id(user_id), before=before, limit=limit
        )


async def on_verification_approved(
    uow: UnitOfWork, verification: Verification, now: datetime, *, one_user_per_phone: bool
) -> None:
    """Called in the transaction that approves a verification: an enrolment's approval
    verifies its factor (and retires the phone it replaces)."""
    if verification.purpose is not Purpose.ENROLLMENT:
        return
    factor = await uow.factors.by_enrollment(verification.id)
    if factor is None or factor.status is not FactorStatus.UNVERIFIED:
        return
    if one_user_per_phone and await uow.factors.verified_for_another_user(factor):
        await uow.factors.disable(factor.id, now)
        await _record_factor(
            uow,
            EventType.FACTOR_ENROLLMENT_FAILED,
            factor,
            verification.api_key_id,
            reason="phone_in_use",
        )
        log.info("factor.enrollment_failed", factor_id=str(factor.id), reason="phone in use")
        return
    await uow.factors.verify(factor.id, now)
    await _record_factor(uow, EventType.FACTOR_VERIFIED, factor, verification.api_key_id)
    _announce_factor(uow, WebhookEvent.FACTOR_ADDED, factor, FactorStatus.VERIFIED, now)
    if factor.replaces_others:
        for old in await uow.factors.verified_others(factor):
            await uow.factors.disable(old.id, now)
            await _record_factor(
                uow, EventType.FACTOR_REPLACED, old, verification.api_key_id, by=str(factor.id)
            )
            _announce_factor(uow, WebhookEvent.FACTOR_REMOVED, old, FactorStatus.DISABLED)


async def _record_rejection(
    uow: UnitOfWork, api_key: ApiKey, user_id: str, client_ip: str | None, lock: Lock | None
) -> None:
    subject = Subject.of_request(api_key, user_id, client_ip=client_ip)
    await audit.record(uow, EventType.RECOVERY_CODE_REJECTED, subject)
    if lock is not None:
        await _record_lock(uow, subject, lock)


async def record_lock(uow: UnitOfWork, verification: Verification, lock: Lock) -> None:
    """A wrong code on the verification caused a lock: recorded, and the user told of it."""
    await _record_lock(uow, Subject.of_verification(verification), lock)


async def _record_lock(uow: UnitOfWork, subject: Subject, lock: Lock) -> None:
    detail = lock_detail(lock)
    await audit.record(uow, EventType.USER_LOCKED, subject, **detail)
    if subject.user_id is not None:
        _announce(uow, subject.tenant_id, WebhookEvent.USER_LOCKED, subject.user_id, **detail)


def lock_detail(lock: Lock) -> dict[str, Any]:
    """How an event records a lock: its length, or that it lasts until released."""
    return {"hard": True} if lock.hard else {"seconds": lock.seconds}


def _announce(
    uow: UnitOfWork, tenant_id: uuid.UUID, event: WebhookEvent, user_id: str, **data: Any
) -> None:
    uow.announce(Announcement(tenant_id, event, {"user_id": user_id, **data}))


def _announce_factor(
    uow: UnitOfWork,
    event: WebhookEvent,
    factor: Factor,
    status: FactorStatus,
    verified_at: datetime | None = None,
) -> None:
    changed: dict[str, Any] = {"status": status}
    if verified_at is not None:
        changed["verified_at"] = verified_at
    uow.announce(Announcement(factor.tenant_id, event, factor_view(factor, **changed)))


async def _record_factor(
    uow: UnitOfWork,
    event_type: EventType,
    factor: Factor,
    api_key_id: uuid.UUID | None,
    *,
    client_ip: str | None = None,
    verification_id: uuid.UUID | None = None,
    **detail: str,
) -> None:
    subject = Subject.of_factor(
        factor, api_key_id, client_ip=client_ip, verification_id=verification_id
    )
    await audit.record(uow, event_type, subject, **detail)


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
