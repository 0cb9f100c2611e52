from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Literal, cast

import redis.asyncio as redis
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import AdminKey, CoreDep
from api.errors import problem
from api.openapi import problems
from shared.kit.db.migrate import current_revision_is_head
from shared.kit.metrics import exposition
from shared.operations.status import ALIVE_SECONDS, WorkerState

router = APIRouter(tags=["operations"])

# Databases seen at this code's head by this process: a schema does not go back, so each is
# looked at (a connection and a query of its own) only until it is.
_AT_HEAD: set[str] = set()


async def _schema_at_head(database_url: str) -> bool:
    if database_url not in _AT_HEAD:
        try:
            at_head = await asyncio.to_thread(current_revision_is_head, database_url)
        except (SQLAlchemyError, OSError):
            return True  # unreachable: said as such, not as a schema behind
        if at_head:
            _AT_HEAD.add(database_url)
    return database_url in _AT_HEAD


class Alive(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready"]
    workers: int = Field(description="Workers whose heartbeat is recent (the last 15 s)")
    last_heartbeat_seconds: float | None = Field(
        description="Seconds since the latest of their heartbeats; null with no worker"
    )


@router.get("/healthz", response_model=Alive)
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/metrics", include_in_schema=False)
async def metrics(_api_key: AdminKey) -> Response:
    """Prometheus counters of this process (limit refusals, …), for an ``admin`` key: counts of
    refusals and lockouts tell an attacker how close they are."""
    body, media_type = exposition()
    return Response(body, media_type=media_type)


@router.get(
    "/readyz",
    response_model=None,
    responses={
        200: {"model": Ready, "description": "Ready"},
        **problems(422, 503),
    },
)
async def readyz(
    core: CoreDep,
    require_worker: Annotated[
        bool, Query(description="Not ready unless a worker's heartbeat is recent, too")
    ] = False,
) -> dict[str, object] | JSONResponse:
    """The database and Redis answer (without either the API cannot take requests), and how
    many workers have sent a heartbeat in the last 15 s (with `require_worker`, none is not
    ready: nothing would be sent)."""
    unreachable = []
    try:
        async with core.uow_factory.reading() as uow:
            await uow.session.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        unreachable.append("database")
    workers: list[WorkerState] = []
    try:
        await cast(Awaitable[bool], core.redis.ping())
        workers = await core.fleet.workers()
    except (redis.RedisError, OSError):
        unreachable.append("redis")
    failing = [f"{', '.join(unreachable)} unreachable"] if unreachable else []
    if "database" not in unreachable and not await _schema_at_head(core.settings.database_url):
        failing.append("the database schema is behind this code: run twostep migrate")
    if require_worker and not workers and "redis" not in unreachable:
        failing.append(f"no worker heartbeat in {ALIVE_SECONDS:.0f} s")
    if failing:
        return problem(
            503, "service_unavailable", f"not ready: {'; '.join(failing)}", {"Retry-After": "5"}
        )
    return {
        "status": "ready",
        "workers": len(workers),
        "last_heartbeat_seconds": min((w.seen_seconds_ago for w in workers), default=None),
    }
