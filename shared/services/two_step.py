"""Two-step authentication for a login server's users (the seed article's two flows).

Enrolment: a phone is stored *unverified* and a verification starts; only its approval verifies
the factor and turns 2SA on, so a typo never locks anyone out. A new phone replaces the old one
only once it is verified itself. Login: a challenge is a verification to the user's verified
factor; the decision is the verification's, approved only after an approved check. Recovery
codes: ten one-time codes, kept as scrypt hashes, counted by the same lockout as wrong codes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import anyio
import structlog

from shared.db.models import ApiKey, Event, Factor, RecoveryCode, Verification
from shared.db.session import UnitOfWork
from shared.domain import Channel, EventType, FactorStatus, Purpose
from shared.errors import Conflict, InvalidInput, NotFound, NoVerifiedFactor, PhoneInUse
from shared.phone import parse_phone
from shared.services import audit
from shared.services.verifications import VerificationRequest, Verifications
from shared.views import change_of

log = structlog.get_logger(__name__)

RECOVERY_CODES_PER_SET = 10
# Crockford's base32: no I, L, O or U, so a code read aloud or typed by hand survives.
_RECOVERY_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RECOVERY_LENGTH = 10
# scrypt at n=2^14, r=8 costs ~16 MiB and tens of milliseconds per guess.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_USER_ID_MAX = 128


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


def validate_user_id(user_id: str) -> str:
    if not 1 <= len(user_id) <= _USER_ID_MAX or not user_id.isprintable():
        raise InvalidInput(f"a user_id is 1 to {_USER_ID_MAX} printable characters")
    return user_id


@dataclass(frozen=True)
class TwoStep:
    """Built once per process; every method works in the caller's unit of work."""

    verifications: Verifications

    async def enroll(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str, enrollment: Enrollment
    ) -> tuple[Factor, Verification]:
        """Store the phone unverified and send it a code; approving that code verifies it."""
        validate_user_id(user_id)
        parsed = parse_phone(enrollment.phone)
        async with uow.reads() as read:
            in_use = self.verifications.settings.one_user_per_phone and (
                await read.factors.verified_for_another_user(parsed.e164, user_id)
            )
            existing = await read.factors.list_for_user(user_id)
        if in_use:
            raise PhoneInUse("this phone is already verified for another user")
        if any(f.phone_e164 == parsed.e164 and f.status is FactorStatus.VERIFIED for f in existing):
            raise Conflict("this phone is already a verified factor of this user")
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
            user_id=user_id,
            phone_e164=parsed.e164,
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
            client_ip=enrollment.client_ip,
        )
        return factor, verification

    async def list_factors(self, uow: UnitOfWork, user_id: str) -> FactorList:
        validate_user_id(user_id)
        factors = await uow.factors.list_for_user(user_id)
        enabled = any(factor.status is FactorStatus.VERIFIED for factor in factors)
        return FactorList(user_id, enabled, factors)

    async def disable_factor(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str, factor_id: uuid.UUID
    ) -> Factor:
        """Disable a factor; a pending enrolment for it is canceled too. Disabling twice is
        fine."""
        factor = await uow.factors.get(validate_user_id(user_id), factor_id)
        if factor is None:
            raise NotFound(f"no factor {factor_id} for this user")
        if factor.status is FactorStatus.DISABLED:
            return factor
        now = self.verifications.clock.now()
        await uow.factors.disable(factor.id, now)
        if factor.enrollment_verification_id is not None:
            canceled = await uow.verifications.cancel(factor.enrollment_verification_id, now)
            if canceled is not None:
                uow.notify_after_commit(change_of(canceled))
        await _record_factor(uow, EventType.FACTOR_DISABLED, factor, api_key.id)
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
            factor = await read.factors.latest_verified(validate_user_id(user_id))
        if factor is None:
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
            client_ip=client_ip,
            verification_id=verification.id,
        )
        return verification

    async def generate_recovery_codes(
        self, uow: UnitOfWork, api_key: ApiKey, user_id: str
    ) -> list[str]:
        """A new set of codes, replacing the old one. They are shown now and never again."""
        validate_user_id(user_id)
        codes = [
            "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
            for _ in range(RECOVERY_CODES_PER_SET)
        ]
        # scrypt is slow on purpose: off the event loop, and before any transaction begins.
        hashes = await anyio.to_thread.run_sync(lambda: [_hash_code(code) for code in codes])
        now = self.verifications.clock.now()
        await uow.recovery_codes.replace_for_user(
            user_id,
            [
                RecoveryCode(id=uuid.uuid4(), user_id=user_id, code_hash=hashed, created_at=now)
                for hashed in hashes
            ],
        )
        await audit.record(
            uow,
            EventType.RECOVERY_CODES_GENERATED,
            user_id=user_id,
            api_key_id=api_key.id,
            count=len(codes),
        )
        return [f"{code[:5]}-{code[5:]}" for code in codes]

    async def redeem_recovery_code(
        self,
        uow: UnitOfWork,
        api_key: ApiKey,
        user_id: str,
        code: str,
        client_ip: str | None = None,
    ) -> bool:
        """Spend one recovery code. Wrong codes count towards the same lockout as wrong OTPs."""
        lockout = self.verifications.guards.lockout
        await lockout.ensure_not_locked(validate_user_id(user_id))
        typed = _normalise_code(code)
        async with uow.reads() as read:
            unused = await read.recovery_codes.unused_for_user(user_id) if typed else []
        matched = await anyio.to_thread.run_sync(_first_match, typed, unused)
        if matched is not None:
            await lockout.record_success(user_id)
            if await uow.recovery_codes.use(matched.id, self.verifications.clock.now()):
                await audit.record(
                    uow,
                    EventType.RECOVERY_CODE_USED,
                    user_id=user_id,
                    api_key_id=api_key.id,
                    client_ip=client_ip,
                    left=len(unused) - 1,
                )
                return True
            await _record_rejection(
                uow, api_key, user_id, client_ip, 0.0
            )  # spent by a racing request
        else:
            locked_for = await lockout.record_failure(user_id)
            await _record_rejection(uow, api_key, user_id, client_ip, locked_for)
        return False

    async def list_events(
        self, uow: UnitOfWork, user_id: str, *, before: int | None, limit: int
    ) -> Sequence[tuple[Event, str | None]]:
        return await uow.events.page_for_user(validate_user_id(user_id), before=before, limit=limit)


async def on_verification_approved(
    uow: UnitOfWork, verification: Verification, now: datetime
) -> None:
    """Called in the transaction that approves a verification: an enrolment's approval
    verifies its factor (and retires the phone it replaces)."""
    if verification.purpose is not Purpose.ENROLLMENT:
        return
    factor = await uow.factors.by_enrollment(verification.id)
    if factor is None or factor.status is not FactorStatus.UNVERIFIED:
        return
    if await uow.factors.verified_for_another_user(factor.phone_e164, factor.user_id):
        log.warning("factor.not_verified", factor_id=str(factor.id), reason="phone in use")
        return
    await uow.factors.verify(factor.id, now)
    await _record_factor(uow, EventType.FACTOR_VERIFIED, factor, verification.api_key_id)
    if factor.replaces_others:
        for old in await uow.factors.verified_others(factor.user_id, factor.id):
            await uow.factors.disable(old.id, now)
            await _record_factor(
                uow, EventType.FACTOR_REPLACED, old, verification.api_key_id, by=str(factor.id)
            )


async def _record_rejection(
    uow: UnitOfWork, api_key: ApiKey, user_id: str, client_ip: str | None, locked_for: float
) -> None:
    await audit.record(
        uow,
        EventType.RECOVERY_CODE_REJECTED,
        user_id=user_id,
        api_key_id=api_key.id,
        client_ip=client_ip,
    )
    if locked_for:
        await audit.record(
            uow,
            EventType.USER_LOCKED,
            user_id=user_id,
            api_key_id=api_key.id,
            client_ip=client_ip,
            seconds=locked_for,
        )


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
    await audit.record(
        uow,
        event_type,
        user_id=factor.user_id,
        api_key_id=api_key_id,
        client_ip=client_ip,
        phone_e164=factor.phone_e164,
        verification_id=verification_id or factor.enrollment_verification_id,
        factor_id=factor.id,
        **detail,
    )


def _normalise_code(code: str) -> str | None:
    cleaned = code.replace("-", "").replace(" ", "").upper()
    if len(cleaned) != _RECOVERY_LENGTH or not all(c in _RECOVERY_ALPHABET for c in cleaned):
        return None
    return cleaned


def _first_match(typed: str | None, unused: Sequence[RecoveryCode]) -> RecoveryCode | None:
    if typed is None:
        return None
    return next((stored for stored in unused if _code_matches(typed, stored.code_hash)), None)


def _hash_code(code: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(code.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _code_matches(code: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        computed = hashlib.scrypt(
            code.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p)
        )
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(computed.hex(), digest)
