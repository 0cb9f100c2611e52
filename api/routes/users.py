"""Two-step authentication for a login server's users: factors, login challenges, recovery
codes and the audit trail. Checks, re-sends and cancels of the verifications these start go
through the verification routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response
from fastapi.responses import JSONResponse

from api.deps import (
    AnswerOnceDep,
    ReadingUowDep,
    RecoveryCodesDep,
    ResourceId,
    TwoStepDep,
    UowDep,
    UsersKey,
    UsersManageKey,
    parse_id,
)
from api.idempotency import KeyedAnswerOnce
from api.openapi import KEYED, problems
from api.schemas import (
    AppFactorCreate,
    ChallengeCreate,
    EmailFactorCreate,
    EventOut,
    EventsOut,
    FactorCreate,
    FactorEnrollmentOut,
    FactorOut,
    FactorsOut,
    PasskeyFactorCreate,
    PhoneFactorCreate,
    RecoveryCodesOut,
    RedeemCreate,
    RedeemOut,
    UserIdPath,
    VerificationOut,
)
from shared.kit.network import normalise_ip
from shared.tenants.idempotency import StoredAnswer
from shared.tenants.models import ApiKey
from shared.two_step.service import AppEnrollment, Enrollment, TwoStep
from shared.two_step.views import ChallengeOut, challenge_view
from shared.unit_of_work import UnitOfWork
from shared.verifications.domain import Channel

router = APIRouter(prefix="/v1/users/{user_id}", tags=["two-step authentication"], responses=KEYED)

# Event ids are 64-bit signed integers.
_LARGEST_EVENT_ID = 2**63 - 1


@router.post(
    "/factors",
    status_code=202,
    response_model=FactorEnrollmentOut,
    responses=problems(403, 409, 413, 415, 422, 429),
)
async def enroll_factor(
    user_id: UserIdPath,
    body: FactorCreate,
    api_key: UsersKey,
    two_step: TwoStepDep,
    answer_once: AnswerOnceDep,
) -> JSONResponse:
    """Start enrolling a phone (`{"phone"}`: codes by sms, call or whatsapp), an email
    address (`{"email"}`), an authenticator app (`{"type": "totp"}`: its `otpauth_uri` in the
    answer) or a passkey (`{"type": "passkey"}`: the browser's `creation_options` on the
    verification once it is `pending`, `GET /v1/verifications/{id}?wait=10`). A phone or an
    address is stored unverified and sent a code. Approving that code (a check
    on the returned verification) verifies it and turns two-step on — unless it is verified for
    another user, which is answered the same way and only shows in the factor staying off
    (`disabled`) after the approval, so that nobody learns who holds which phone or address."""

    if isinstance(body, AppFactorCreate):
        return await _enroll_app(user_id, body, api_key, two_step, answer_once)

    async def enroll(uow: UnitOfWork) -> StoredAnswer:
        if isinstance(body, PasskeyFactorCreate):
            factor, verification = await two_step.enroll_passkey(
                uow, api_key, user_id, _authenticator_enrollment(body)
            )
        else:
            factor, verification = await two_step.enroll(uow, api_key, user_id, _enrollment(body))
        answer = FactorEnrollmentOut(
            factor=FactorOut.from_row(factor),
            verification=VerificationOut.from_row(verification),
        )
        return StoredAnswer(202, answer.model_dump(mode="json"))

    answered = await answer_once(
        api_key,
        ("POST", f"/v1/users/{user_id}/factors", body.model_dump(mode="json")),
        enroll,
    )
    return answered.response(lambda answer: f"/v1/verifications/{answer['verification']['id']}")


def _enrollment(body: PhoneFactorCreate | EmailFactorCreate) -> Enrollment:
    return Enrollment(
        phone=body.phone if isinstance(body, PhoneFactorCreate) else None,
        email=body.email if isinstance(body, EmailFactorCreate) else None,
        channel=Channel(body.channel),
        replace_existing=body.replace_existing,
        client_ip=str(body.client_ip) if body.client_ip else None,
    )


async def _enroll_app(
    user_id: str,
    body: AppFactorCreate,
    api_key: ApiKey,
    two_step: TwoStep,
    answer_once: KeyedAnswerOnce,
) -> JSONResponse:
    """Never replayed from a stored answer, whatever the Idempotency-Key: the answer holds the
    app's secret, of which twostep keeps no copy. A repeat enrols another (unverified) app."""

    async def enroll(uow: UnitOfWork) -> StoredAnswer:
        factor, verification, uri = await two_step.enroll_app(
            uow, api_key, user_id, _authenticator_enrollment(body)
        )
        answer = FactorEnrollmentOut(
            factor=FactorOut.from_row(factor),
            verification=VerificationOut.from_row(verification),
            otpauth_uri=uri,
        )
        return StoredAnswer(202, answer.model_dump(mode="json"))

    answered = await answer_once.once(api_key, None, ("POST", "", {}), enroll)
    return answered.response(lambda answer: f"/v1/verifications/{answer['verification']['id']}")


def _authenticator_enrollment(body: AppFactorCreate | PasskeyFactorCreate) -> AppEnrollment:
    return AppEnrollment(
        label=body.label,
        replace_existing=body.replace_existing,
        client_ip=normalise_ip(str(body.client_ip)) if body.client_ip else None,
    )


@router.get("/factors", response_model=FactorsOut, responses=problems(403, 422))
async def list_factors(
    user_id: UserIdPath, uow: ReadingUowDep, api_key: UsersKey, two_step: TwoStepDep
) -> FactorsOut:
    """The user's phones and whether two-step is on (at least one verified)."""
    listed = await two_step.list_factors(uow, api_key, user_id)
    return FactorsOut(
        user_id=listed.user_id,
        two_step_enabled=listed.two_step_enabled,
        factors=[FactorOut.from_row(factor) for factor in listed.factors],
    )


@router.delete(
    "/factors/{factor_id}",
    status_code=204,
    response_class=Response,
    responses=problems(403, 404, 409, 422),
)
async def disable_factor(
    user_id: UserIdPath,
    factor_id: ResourceId,
    uow: UowDep,
    api_key: UsersManageKey,
    two_step: TwoStepDep,
    allow_downgrade: Annotated[
        bool,
        Query(
            description="Disable the user's last authenticator app even though only weaker "
            "factors (codes by text, call or email) are left; without it, `409 last_strong_factor`"
        ),
    ] = False,
) -> Response:
    """Disable a factor. With no verified factor left, two-step is off."""
    await two_step.disable_factor(
        uow, api_key, user_id, parse_id(factor_id, "factor"), allow_downgrade=allow_downgrade
    )
    return Response(status_code=204)


@router.post(
    "/challenges",
    status_code=202,
    response_model=ChallengeOut,
    responses=problems(403, 404, 409, 413, 415, 422, 429),
)
async def start_challenge(
    user_id: UserIdPath,
    api_key: UsersKey,
    two_step: TwoStepDep,
    answer_once: AnswerOnceDep,
    body: Annotated[ChallengeCreate | None, Body()] = None,
) -> JSONResponse:
    """Login: send a code to one of the user's verified factors (`factor_id`, else the preferred:
    an authenticator app before a phone or an address, then the latest verified), on its channel
    or `channel`; the answer names the factor and lists the others the login page can offer.
    `409 no_verified_factor` when two-step is off (or the factor named is not verified). The
    user may log in only once a check on it is `approved`."""
    request = body or ChallengeCreate()

    async def challenge(uow: UnitOfWork) -> StoredAnswer:
        challenge = await two_step.start_challenge(
            uow,
            api_key,
            user_id,
            request.channel,
            str(request.client_ip) if request.client_ip else None,
            factor_id=request.factor_id,
        )
        return StoredAnswer(202, challenge_view(challenge))

    answered = await answer_once(
        api_key,
        ("POST", f"/v1/users/{user_id}/challenges", request.model_dump(mode="json")),
        challenge,
    )
    return answered.response(lambda answer: f"/v1/verifications/{answer['id']}")


@router.post(
    "/recovery-codes",
    status_code=201,
    response_model=RecoveryCodesOut,
    responses=problems(403, 422, 429),
)
async def generate_recovery_codes(
    user_id: UserIdPath, uow: UowDep, api_key: UsersManageKey, recovery_codes: RecoveryCodesDep
) -> RecoveryCodesOut:
    """Ten new one-time recovery codes, replacing any earlier set. Shown once."""
    codes = await recovery_codes.generate(uow, api_key, user_id)
    return RecoveryCodesOut(codes=codes)


@router.post(
    "/recovery-codes/redeem",
    response_model=RedeemOut,
    responses=problems(403, 413, 415, 422, 429),
)
async def redeem_recovery_code(
    user_id: UserIdPath,
    body: RedeemCreate,
    uow: UowDep,
    api_key: UsersKey,
    recovery_codes: RecoveryCodesDep,
) -> RedeemOut:
    """Spend a recovery code instead of a phone code. Wrong codes count towards the lockout."""
    approved = await recovery_codes.redeem(
        uow,
        api_key,
        user_id,
        body.code,
        str(body.client_ip) if body.client_ip else None,
    )
    return RedeemOut(status="approved" if approved else "rejected")


@router.get("/events", response_model=EventsOut, responses=problems(403, 422))
async def list_events(
    user_id: UserIdPath,
    uow: ReadingUowDep,
    api_key: UsersManageKey,
    two_step: TwoStepDep,
    before: Annotated[int | None, Query(ge=1, le=_LARGEST_EVENT_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> EventsOut:
    """The user's audit trail, newest first."""
    rows = await two_step.list_events(uow, api_key, user_id, before=before, limit=limit)
    events = [EventOut.from_row(event, api_key_name) for event, api_key_name in rows]
    return EventsOut(events=events, next_before=events[-1].id if len(events) == limit else None)
