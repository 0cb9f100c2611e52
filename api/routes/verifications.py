from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import ApiKeyDep, ContextDep, UowDep, parse_id
from api.schemas import CheckCreate, CheckOut, VerificationCreate, VerificationOut
from shared.services import verifications
from shared.services.verifications import VerificationRequest

router = APIRouter(prefix="/v1/verifications", tags=["verifications"])


@router.post("", status_code=202, response_model=VerificationOut)
def create_verification(
    body: VerificationCreate,
    uow: UowDep,
    api_key: ApiKeyDep,
    context: ContextDep,
    response: Response,
) -> VerificationOut:
    """Ask for a code to be sent. Answers at once with status `queued`; a worker sends it."""
    verification = verifications.request_verification(
        uow,
        context.settings,
        api_key,
        VerificationRequest(
            to=body.to,
            channel=body.channel,
            locale=body.locale,
            user_id=body.user_id,
            client_ip=str(body.client_ip) if body.client_ip else None,
        ),
    )
    uow.commit()
    response.headers["Location"] = f"/v1/verifications/{verification.id}"
    return VerificationOut.from_row(verification)


@router.get("/{verification_id}", response_model=VerificationOut)
def read_verification(verification_id: str, uow: UowDep, _api_key: ApiKeyDep) -> VerificationOut:
    verification = verifications.get_verification(uow, parse_id(verification_id, "verification"))
    return VerificationOut.from_row(verification)


@router.post("/{verification_id}/checks", status_code=202, response_model=CheckOut)
def create_check(
    verification_id: str,
    body: CheckCreate,
    uow: UowDep,
    _api_key: ApiKeyDep,
    context: ContextDep,
    response: Response,
) -> CheckOut:
    """Hand over the code the user typed. Answers at once with status `queued`."""
    check = verifications.request_check(
        uow,
        context.settings,
        context.stash,
        parse_id(verification_id, "verification"),
        body.code,
    )
    uow.commit()
    response.headers["Location"] = f"/v1/verifications/{check.verification_id}/checks/{check.id}"
    return CheckOut.from_row(check)


@router.get("/{verification_id}/checks/{check_id}", response_model=CheckOut)
def read_check(verification_id: str, check_id: str, uow: UowDep, _api_key: ApiKeyDep) -> CheckOut:
    check = verifications.get_check(
        uow, parse_id(verification_id, "verification"), parse_id(check_id, "check")
    )
    return CheckOut.from_row(check)
