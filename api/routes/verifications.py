from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from api.deps import (
    AnswerOnceDep,
    ResourceId,
    UowDep,
    VerificationsDep,
    VerifyKey,
    WaitDep,
    parse_id,
)
from api.idempotency import Answered
from api.openapi import KEYED, problems
from api.schemas import (
    CheckCreate,
    CheckOut,
    CodeCheckCreate,
    ResendCreate,
    VerificationCreate,
    VerificationOut,
)
from shared.kit.changes import Mark
from shared.tenants.idempotency import StoredAnswer
from shared.unit_of_work import UnitOfWork
from shared.verifications.domain import Channel
from shared.verifications.service import VerificationRequest
from shared.verifications.views import View, check_view, verification_view
from shared.verifications.waiting import Written, check_decided, verification_settled

router = APIRouter(prefix="/v1/verifications", tags=["verifications"], responses=KEYED)


def _verification_location(answer: dict[str, Any]) -> str:
    return f"/v1/verifications/{answer['id']}"


def _check_location(answer: dict[str, Any]) -> str:
    return f"/v1/verifications/{answer['verification_id']}/checks/{answer['id']}"


@dataclass(frozen=True)
class _Held:
    """A POST that may wait (``?wait=``) for what it wrote to be settled: how to wait for the
    row, when it is settled, and where it lives."""

    until: Callable[[Written | None], Awaitable[View]]
    settled: Callable[[View], bool]
    location: Callable[[dict[str, Any]], str]

    async def answer(self, answered: Answered, seconds: float, mark: Mark | None) -> JSONResponse:
        """``200`` and the row once it is settled within ``seconds``, else the POST's answer."""
        if seconds > 0 and not self.settled(answered.answer.body):
            # What this request wrote is known; a replayed answer may be long out of date.
            written = None if answered.replayed else Written(answered.answer.body, mark)
            current = await self.until(written)
            if self.settled(current):
                headers = {"Location": self.location(current)}
                return JSONResponse(current, status_code=200, headers=headers)
        return answered.response(self.location)


@router.post(
    "",
    status_code=202,
    response_model=VerificationOut,
    responses={
        200: {"model": VerificationOut, "description": "Sent (or over) within `?wait=`"},
        **problems(403, 409, 413, 415, 422, 429),
    },
)
async def create_verification(
    body: VerificationCreate,
    api_key: VerifyKey,
    verifications: VerificationsDep,
    answer_once: AnswerOnceDep,
    wait: WaitDep,
) -> JSONResponse:
    """Ask for a code to be sent. Answers `202` with status `queued` at once (a worker sends
    it), or with `?wait=S` `200` as soon as it is sent (`pending`) or over (`202` if it is not
    within S seconds): one call where a login server would otherwise create, then long-poll."""

    async def send(uow: UnitOfWork) -> StoredAnswer:
        verification = await verifications.request(
            uow,
            api_key,
            VerificationRequest(
                to=body.to,
                channel=Channel(body.channel),
                locale=body.locale,
                user_id=body.user_id,
                client_ip=str(body.client_ip) if body.client_ip else None,
            ),
        )
        return StoredAnswer(202, verification_view(verification))

    mark = wait.mark()
    answered = await answer_once(
        api_key,
        ("POST", "/v1/verifications", body.model_dump(mode="json")),
        send,
        one_statement=True,  # the verification and its event, together
    )

    async def until_settled(written: Written | None) -> View:
        verification_id = uuid.UUID(str(answered.answer.body["id"]))
        return await wait.verification(api_key.tenant_id, verification_id, written)

    held = _Held(until_settled, verification_settled, _verification_location)
    return await held.answer(answered, wait.seconds, mark)


@router.get("/{verification_id}", response_model=VerificationOut, responses=problems(403, 404, 422))
async def read_verification(
    verification_id: ResourceId, api_key: VerifyKey, wait: WaitDep
) -> JSONResponse:
    """The verification; with `?wait=S`, once it is sent (`pending`) or over, at most S s."""
    view = await wait.verification(api_key.tenant_id, parse_id(verification_id, "verification"))
    return JSONResponse(view)


@router.post(
    "/{verification_id}/resend",
    status_code=202,
    response_model=VerificationOut,
    responses=problems(403, 404, 409, 413, 415, 422, 429),
)
async def resend_verification(
    verification_id: ResourceId,
    uow: UowDep,
    api_key: VerifyKey,
    verifications: VerificationsDep,
    body: Annotated[ResendCreate | None, Body()] = None,
) -> JSONResponse:
    """Send the same code again, on the same channel or another (`{"channel": "call"}`).

    The verification stays `pending` and checkable; a re-send already waiting is not doubled.
    """
    verification = await verifications.resend(
        uow,
        api_key,
        parse_id(verification_id, "verification"),
        Channel(body.channel) if body and body.channel else None,
    )
    return JSONResponse(verification_view(verification), status_code=202)


@router.post(
    "/{verification_id}/cancel",
    status_code=202,
    response_model=VerificationOut,
    responses=problems(403, 404, 409),
)
async def cancel_verification(
    verification_id: ResourceId, uow: UowDep, api_key: VerifyKey, verifications: VerificationsDep
) -> JSONResponse:
    """End a verification: no more checks are accepted for it."""
    verification = await verifications.cancel(
        uow, api_key, parse_id(verification_id, "verification")
    )
    return JSONResponse(verification_view(verification), status_code=202)


@router.post(
    "/{verification_id}/checks",
    status_code=202,
    response_model=CheckOut,
    responses={
        200: {"model": CheckOut, "description": "Decided within `?wait=`"},
        **problems(403, 404, 409, 413, 415, 422, 429),
    },
)
async def create_check(
    verification_id: ResourceId,
    body: CheckCreate,
    api_key: VerifyKey,
    verifications: VerificationsDep,
    answer_once: AnswerOnceDep,
    wait: WaitDep,
) -> JSONResponse:
    """Hand over the code the user typed (`{"code"}`), or for a passkey the browser's credential
    (`{"credential"}`). Answers `202` with status `queued` at once, or with `?wait=S` `200` with
    the decided check as soon as it is decided (`202` if it is not within S seconds)."""
    parsed_id = parse_id(verification_id, "verification")
    answer = (
        body.code
        if isinstance(body, CodeCheckCreate)
        else body.credential.model_dump(mode="json", exclude_defaults=True)
    )

    async def check(uow: UnitOfWork) -> StoredAnswer:
        created = await verifications.submit_check(uow, api_key, parsed_id, answer)
        return StoredAnswer(202, check_view(created))

    mark = wait.mark()
    answered = await answer_once(
        api_key,
        ("POST", f"/v1/verifications/{parsed_id}/checks", body.model_dump(mode="json")),
        check,
        one_statement=True,  # the check and its verification's count, together
    )

    async def until_decided(written: Written | None) -> View:
        check_id = uuid.UUID(str(answered.answer.body["id"]))
        return await wait.check(api_key.tenant_id, parsed_id, check_id, written)

    return await _Held(until_decided, check_decided, _check_location).answer(
        answered, wait.seconds, mark
    )


@router.get(
    "/{verification_id}/checks/{check_id}",
    response_model=CheckOut,
    responses=problems(403, 404, 422),
)
async def read_check(
    verification_id: ResourceId,
    check_id: ResourceId,
    api_key: VerifyKey,
    wait: WaitDep,
) -> JSONResponse:
    """The check; with `?wait=S`, once it is decided, at most S s."""
    view = await wait.check(
        api_key.tenant_id, parse_id(verification_id, "verification"), parse_id(check_id, "check")
    )
    return JSONResponse(view)
