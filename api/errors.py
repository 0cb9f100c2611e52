"""One place that turns errors into HTTP: ``application/problem+json`` with a stable ``code``."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.schemas import UNION_TAGS
from shared.errors import (
    Conflict,
    CountryNotAllowed,
    InsufficientScope,
    InvalidEmailAddress,
    InvalidInput,
    InvalidPhoneNumber,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    TwostepError,
    Unauthorized,
)

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"

_STATUS_BY_ERROR: list[tuple[type[TwostepError], int]] = [
    (InvalidInput, 422),
    (CountryNotAllowed, 403),
    (InsufficientScope, 403),
    (RateLimited, 429),
    (Unauthorized, 401),
    (NotFound, 404),
    (Conflict, 409),
    (ServiceUnavailable, 503),
]
# What Starlette and FastAPI raise themselves, besides the 400 of a body that is not UTF-8: an
# unknown path, an unknown method. Every code the API sends is in docs/api.md's table of errors.
_CODE_BY_STATUS = {404: "not_found", 405: "method_not_allowed"}
# The codes this module and the middleware write themselves.
_EDGE_CODES = frozenset(
    {"invalid_request", "unsupported_media_type", "payload_too_large", "internal_error"}
)
_DESTINATION_FIELDS = frozenset({"to", "phone", "email"})
# Errors about the field's presence, not its value.
_NOT_ITS_VALUE = frozenset({"missing", "extra_forbidden"})
_UNREADABLE = "the body is not valid JSON (UTF-8)"


def problem_codes() -> list[str]:
    """Every ``code`` a problem answer can carry, sorted: the core's errors and the edge's own
    (the OpenAPI document's ``ProblemCode`` enum, and docs/api.md's table of errors)."""
    codes = set(_EDGE_CODES) | set(_CODE_BY_STATUS.values())
    pending: list[type[TwostepError]] = list(TwostepError.__subclasses__())
    while pending:
        error = pending.pop()
        codes.add(error.code)
        pending.extend(error.__subclasses__())
    return sorted(codes)


def problem(
    status: int,
    code: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {
        "type": f"https://twostep.dev/problems/{code.replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def status_for(error: TwostepError) -> int:
    for error_class, status in _STATUS_BY_ERROR:
        if isinstance(error, error_class):
            return status
    return 500


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TwostepError, _twostep_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(SQLAlchemyError, _database_error)  # type: ignore[arg-type]
    app.add_exception_handler(RedisError, _redis_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)


async def _twostep_error(_request: Request, exc: TwostepError) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    extra: dict[str, Any] = {}
    if isinstance(exc, ServiceUnavailable | RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, RateLimited):
        extra["limit"] = exc.limit
    return problem(status, exc.code, exc.detail, headers or None, **extra)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    content_type = request.headers.get("content-type", "")
    body_not_json = any(error["loc"] == ("body",) for error in exc.errors())
    if body_not_json and request.method in ("POST", "PUT") and "json" not in content_type:
        return problem(
            415,
            "unsupported_media_type",
            "send a JSON body with the header Content-Type: application/json",
        )
    if any(error["type"] == "json_invalid" for error in exc.errors()):
        return _unreadable_body()
    errors = [
        {
            "field": ".".join(
                str(part) for part in error["loc"] if part != "body" and part not in UNION_TAGS
            ),
            "message": _said(error),
            "type": error["type"],
        }
        for error in exc.errors()
    ]
    detail = "; ".join(
        f"{error['field']}: {error['message']}" if error["field"] else error["message"]
        for error in errors
    )
    code = _destination_code(exc.errors(), errors)
    return problem(422, code, detail or "the request is not valid", errors=errors)


_E164 = (
    "not a phone number in E.164: a +, the country code and the number, no spaces or "
    "punctuation (e.g. +14155550123)"
)
_A_CODE = "a code is 4 to 10 letters or digits (a space or a dash between them is fine)"


def _said(error: Any) -> str:
    """Pydantic's words, but for a pattern a newcomer cannot read at a glance: what is wanted."""
    if error["type"] != "string_pattern_mismatch" or not error["loc"]:
        return str(error["msg"]).removeprefix("Value error, ")
    field, typed = error["loc"][-1], error.get("input")
    if field == "code":
        return _A_CODE
    if field in ("to", "phone") and not (isinstance(typed, str) and "@" in typed):
        return _E164
    return str(error["msg"])


def _destination_code(raw: Sequence[Any], errors: list[dict[str, str]]) -> str:
    """A phone number or an email address of the wrong shape or type is as invalid as one no
    country or mailbox has: ``invalid_phone_number`` / ``invalid_email_address``."""
    kinds = set()
    for error, seen in zip(errors, raw, strict=True):
        if error["field"] not in _DESTINATION_FIELDS or error["type"] in _NOT_ITS_VALUE:
            return "invalid_request"
        typed = seen.get("input")
        email = error["field"] == "email" or (isinstance(typed, str) and "@" in typed)
        kinds.add(InvalidEmailAddress.code if email else InvalidPhoneNumber.code)
    return kinds.pop() if len(kinds) == 1 else "invalid_request"


def _unreadable_body() -> JSONResponse:
    # One answer, to the letter, whether the body is not UTF-8 (FastAPI's 400) or not JSON, so
    # that a client handles one code for both.
    error = {"field": "", "message": _UNREADABLE, "type": "json_invalid"}
    return problem(422, "invalid_request", _UNREADABLE, errors=[error])


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:
        return _unreadable_body()
    code = _CODE_BY_STATUS.get(exc.status_code)
    if code is None:  # nothing raises another one today; were it to, a code of the table
        code = "internal_error" if exc.status_code >= 500 else "invalid_request"
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem(exc.status_code, code, detail, dict(exc.headers) if exc.headers else None)


async def _database_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
    if not isinstance(exc, OperationalError | InterfaceError | SQLAlchemyTimeoutError):
        return await _unexpected(request, exc)
    log.error("api.database_unavailable", error_type=type(exc).__name__)
    return problem(
        503,
        "service_unavailable",
        "the database is unreachable; try again shortly",
        {"Retry-After": "5"},
    )


async def _redis_error(_request: Request, exc: RedisError) -> JSONResponse:
    log.error("api.redis_unavailable", error_type=type(exc).__name__)
    return problem(
        503,
        "service_unavailable",
        "Redis is unreachable; try again shortly",
        {"Retry-After": "5"},
    )


def bug_answer(exc: Exception) -> JSONResponse:
    """The answer to a bug: logged with its traceback, answered ``500 internal_error``."""
    log.error("api.unexpected_error", error_type=type(exc).__name__, exc_info=exc)
    return problem(500, "internal_error", "something went wrong on our side")


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    return bug_answer(exc)
