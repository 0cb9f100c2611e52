"""Answer a POST once per ``Idempotency-Key``; the route says what doing it once means."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from api.deps import ApiContext
from shared.clock import utcnow
from shared.db.models import ApiKey
from shared.db.session import UnitOfWork
from shared.services import idempotency
from shared.services.idempotency import StoredAnswer


def answer_once(
    context: ApiContext,
    uow: UnitOfWork,
    api_key: ApiKey,
    key: str | None,
    request: tuple[str, str, dict[str, Any]],
    do: Callable[[], StoredAnswer],
    location: Callable[[dict[str, Any]], str],
) -> JSONResponse:
    """Run ``do`` and commit, unless this key already has an answer: then replay it.

    Requests with one key take turns, so a repeat racing the first one replays its answer. If
    the turn-taking fails anyway (a lock that outlived its lease), the unique (API key, key)
    constraint lets one commit and the other rolls back and replays.
    """
    if key is None:
        answer = do()
        uow.commit()
        return _response(answer, location, replayed=False)
    idempotency.validate_key(key)
    with context.idempotency_locks.hold(api_key.id, key):
        return _answer_holding_the_key(
            uow, api_key, key, request, context.settings.idempotency_ttl, do, location
        )


def _answer_holding_the_key(
    uow: UnitOfWork,
    api_key: ApiKey,
    key: str,
    request: tuple[str, str, dict[str, Any]],
    ttl: timedelta,
    do: Callable[[], StoredAnswer],
    location: Callable[[dict[str, Any]], str],
) -> JSONResponse:
    request_fingerprint = idempotency.fingerprint(*request)
    now = utcnow()
    stored = idempotency.find_answer(uow, api_key.id, key, request_fingerprint, now)
    if stored is not None:
        return _response(stored, location, replayed=True)
    answer = do()
    idempotency.remember_answer(uow, api_key.id, key, request_fingerprint, answer, now, ttl)
    try:
        uow.commit()
    except IntegrityError:
        uow.rollback()
        stored = idempotency.find_answer(uow, api_key.id, key, request_fingerprint, utcnow())
        if stored is None:
            raise
        return _response(stored, location, replayed=True)
    return _response(answer, location, replayed=False)


def _response(
    answer: StoredAnswer, location: Callable[[dict[str, Any]], str], *, replayed: bool
) -> JSONResponse:
    headers = {"Location": location(answer.body)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.body, status_code=answer.status, headers=headers)
