from __future__ import annotations

from fastapi import APIRouter

from api.deps import ApiKeyDep, CoreDep
from api.openapi import KEYED
from api.schemas import LimitsOut, LockoutOut, SendLimitOut

router = APIRouter(prefix="/v1/limits", tags=["limits"], responses=KEYED)


@router.get("", response_model=LimitsOut)
async def read_limits(core: CoreDep, _api_key: ApiKeyDep) -> LimitsOut:
    """The limits in force, as configured (counted in Redis across every process)."""
    settings = core.settings
    return LimitsOut(
        send_limits=[
            SendLimitOut(name=info.name, limit=info.limit, applies_to=info.applies_to)
            for info in core.guards.sends.describe()
        ],
        resend_cooldown_seconds=settings.resend_cooldown_seconds,
        allowed_countries=sorted(settings.allowed_countries)
        if settings.allowed_countries
        else None,
        country_daily_caps=settings.country_daily_caps,
        checks_per_verification=settings.max_check_attempts,
        lockout=LockoutOut(
            failures_per_step=settings.lockout_failures,
            wait_increment_seconds=settings.lockout_wait_increment_seconds,
            max_wait_seconds=settings.lockout_max_wait_seconds,
            failure_reset_seconds=settings.lockout_failure_reset_seconds,
            hard_lock_after_failures=settings.lockout_hard_failures,
        ),
        provider_rate_per_second=settings.provider_rate,
        provider_burst=settings.provider_burst,
    )
