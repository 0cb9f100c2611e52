from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header
from fastapi.responses import JSONResponse

from api.deps import ApiKeyDep, ContextDep, UowDep, parse_id
from api.idempotency import answer_once
from api.schemas import (
    CheckCreate,
    CheckOut,
    ResendCreate,
    VerificationCreate,
    VerificationOut,
)
from shared.services import verifications
from shared.services.idempotency import StoredAnswer
from shared.services.verifications import VerificationRequest

router = APIRouter(prefix="/v1/verifications", tags=["verifications"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Repeat a request with the same key (for 24 h) to get the first answer again, "
        "with no second effect.",
    ),
]


@router.post("", status_code=202, response_model=VerificationOut)
def create_verification(
    body: VerificationCreate,
    uow: UowDep,
    api_key: ApiKeyDep,
    context: ContextDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Ask for a code to be sent. Answers at once with status `queued`; a worker sends it."""

    def send() -> StoredAnswer:
        verification = verifications.request_verification(
            uow,
            context.settings,
            context.guards,
            api_key,
            VerificationRequest(
                to=body.to,
                channel=body.channel,
                locale=body.locale,
                user_id=body.user_id,
                client_ip=str(body.client_ip) if body.client_ip else None,
            ),
        )
        return StoredAnswer(202, VerificationOut.from_row(verification).model_dump(mode="json"))

    return answer_once(
        context,
        uow,
        api_key,
        idempotency_key,
        ("POST", "/v1/verifications", body.model_dump(mode="json")),
        send,
        location=lambda answer: f"/v1/verifications/{answer['id']}",
    )


@router.get("/{verification_id}", response_model=VerificationOut)
def read_verification(verification_id: str, uow: UowDep, _api_key: ApiKeyDep) -> VerificationOut:
    verification = verifications.get_verification(uow, parse_id(verification_id, "verification"))
    return VerificationOut.from_row(verification)


@router.post("/{verification_id}/resend", status_code=202, response_model=VerificationOut)
def resend_verification(
    verification_id: str,
    uow: UowDep,
    api_key: ApiKeyDep,
    context: ContextDep,
    body: Annotated[ResendCreate | None, Body()] = None,
) -> VerificationOut:
    """Send the same code again, on the same channel or another (`{"channel": "call"}`).

    The verification stays `pending` and checkable; a re-send already waiting is not doubled.
    """
    verification = verifications.request_resend(
        uow,
        context.settings,
        context.guards,
        api_key,
        parse_id(verification_id, "verification"),
        body.channel if body else None,
    )
    uow.commit()
    return VerificationOut.from_row(verification)


@router.post("/{verification_id}/cancel", status_code=202, response_model=VerificationOut)
def cancel_verification(verification_id: str, uow: UowDep, api_key: ApiKeyDep) -> VerificationOut:
    """End a verification: no more checks are accepted for it."""
    verification = verifications.cancel_verification(
        uow, api_key, parse_id(verification_id, "verification")
    )
    uow.commit()
    return VerificationOut.from_row(verification)


@router.post("/{verification_id}/checks", status_code=202, response_model=CheckOut)
def create_check(
    verification_id: str,
    body: CheckCreate,
    uow: UowDep,
    api_key: ApiKeyDep,
    context: ContextDep,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Hand over the code the user typed. Answers at once with status `queued`."""
    parsed_id = parse_id(verification_id, "verification")

    def check() -> StoredAnswer:
        created = verifications.request_check(
            uow, context.settings, context.guards, context.stash, parsed_id, body.code
        )
        return StoredAnswer(202, CheckOut.from_row(created).model_dump(mode="json"))

    return answer_once(
        context,
        uow,
        api_key,
        idempotency_key,
        ("POST", f"/v1/verifications/{parsed_id}/checks", body.model_dump(mode="json")),
        check,
        location=lambda answer: (
            f"/v1/verifications/{answer['verification_id']}/checks/{answer['id']}"
        ),
    )


@router.get("/{verification_id}/checks/{check_id}", response_model=CheckOut)
def read_check(verification_id: str, check_id: str, uow: UowDep, _api_key: ApiKeyDep) -> CheckOut:
    check = verifications.get_check(
        uow, parse_id(verification_id, "verification"), parse_id(check_id, "check")
    )
    return CheckOut.from_row(check)
