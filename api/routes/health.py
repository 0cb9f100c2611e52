from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

import redis.asyncio as redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import AdminKey, ContextDep
from api.errors import problem
from api.openapi import problems

router = APIRouter(tags=["operations"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
async def metrics(_api_key: AdminKey) -> Response:
    """Prometheus counters of this process (limit refusals, …), for an ``admin`` key: counts of
    refusals and lockouts tell an attacker how close they are."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


@router.get("/readyz", response_model=None, responses=problems(503))
async def readyz(context: ContextDep) -> dict[str, str] | JSONResponse:
    """The database and Redis answer; without either the API cannot take requests."""
    failing = []
    try:
        async with context.uow_factory.reading() as uow:
            await uow.session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        failing.append("database")
    try:
        await cast(Awaitable[bool], context.redis.ping())
    except (redis.RedisError, OSError):
        failing.append("redis")
    if failing:
        return problem(
            503,
            "service_unavailable",
            f"not ready: {', '.join(failing)} unreachable",
            {"Retry-After": "5"},
        )
    return {"status": "ready"}
