"""The error answers of the OpenAPI document: what each route can answer besides success, as
``application/problem+json`` with one ``Problem`` schema (the shape ``api.errors.problem``
writes), and ``Retry-After`` where the answer carries one."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from api.errors import PROBLEM_JSON


class FieldProblem(BaseModel):
    field: str = Field(description="The offending field, dotted; empty for the whole body")
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable ``code`` to branch on."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable snake_case word: see the README's table of errors")
    limit: str | None = Field(default=None, description="On 429: which limit refused")
    errors: list[FieldProblem] | None = Field(default=None, description="On 422: what is wrong")


_SAYS = {
    401: "No, a malformed, an unknown or a revoked API key (`unauthorized`)",
    403: "The key lacks the route's scope (`insufficient_scope`), or the destination's country "
    "is not allowed (`country_not_allowed`)",
    404: "No such id for this key's tenant (`not_found`)",
    409: "Not possible in the current state (`verification_not_pending`, "
    "`no_verified_factor`, `conflict`)",
    413: "The body is over the size limit (`payload_too_large`)",
    415: "The body is not JSON (`unsupported_media_type`)",
    422: "Invalid input (`invalid_request`, `invalid_phone_number`, `idempotency_key_reused`)",
    429: "A limit refused it (`rate_limited`, `max_attempts_reached`, `user_locked`)",
    503: "The database or Redis is unreachable; limits fail closed (`service_unavailable`)",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    }
}
_PROBLEM_SCHEMA = {"$ref": "#/components/schemas/Problem"}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: these error answers, as problems."""
    answers: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        answer: dict[str, Any] = {
            "description": _SAYS[status],
            "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
        }
        if status in (429, 503):
            answer["headers"] = _RETRY_AFTER
        answers[status] = answer
    return answers


# Every /v1 route: the key, its scope, its input, the limits, the dependencies.
V1 = problems(401, 403, 422, 429, 503)
WITH_BODY = problems(413, 415)
BY_ID = problems(404)
STATEFUL = problems(409)


def install_schema(app: FastAPI) -> None:
    """Generate the document once, with the problem schemas in its components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            definitions = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(definitions.pop("$defs", {}))
            schemas["Problem"] = definitions
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
