"""Lifting lockouts: an admin's decision, recorded in the audit trail."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import AdminKey, TwoStepDep, UowDep
from api.openapi import KEYED, problems
from api.schemas import LockoutRelease

router = APIRouter(prefix="/v1/lockouts", tags=["two-step authentication"], responses=KEYED)


@router.post(
    "/release",
    status_code=204,
    response_class=Response,
    responses=problems(403, 413, 415, 422),
)
async def release_lockout(
    body: LockoutRelease, uow: UowDep, api_key: AdminKey, two_step: TwoStepDep
) -> Response:
    """Lift the lockout of a user, of a phone number or email address, or of a client address
    (those lock for verifications made without a user), hard lockouts included (after
    `TWOSTEP_LOCKOUT_HARD_FAILURES` consecutive wrong codes only this lifts them), and forget
    their wrong codes."""
    client_ip = str(body.client_ip) if body.client_ip else None
    await two_step.release_lockout(
        uow, api_key, body.user_id, body.phone, client_ip, email=body.email
    )
    return Response(status_code=204)
