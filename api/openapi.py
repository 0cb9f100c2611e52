"""The error answers of the OpenAPI document: what each route can answer besides success, as
``application/problem+json`` with one ``Problem`` schema (the shape ``api.errors.problem``
writes), and ``Retry-After`` where the answer carries one. Each route lists exactly the statuses
it can give; FastAPI's own 422 (``HTTPValidationError``, a shape this API never sends) is taken
out of the document."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from api.errors import PROBLEM_JSON
from shared.kit.settings import Settings
from shared.webhooks import service as webhooks


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
    code: str = Field(description="Stable snake_case word: see the table of errors in docs/api.md")
    limit: str | None = Field(default=None, description="On 429: which limit refused")
    errors: list[FieldProblem] | None = Field(default=None, description="On 422: what is wrong")


_SAYS = {
    401: "No, a malformed, an unknown or a revoked API key (`unauthorized`)",
    403: "The key lacks the route's scope (`insufficient_scope`), or the destination's country "
    "is not allowed (`country_not_allowed`)",
    404: "No such id for this key's tenant, or not an id at all (`not_found`)",
    409: "Not possible in the current state (`verification_not_pending`, "
    "`no_verified_factor`, `factor_not_verified`, `channel_mismatch`, `last_strong_factor`), "
    "or a request with this "
    "`Idempotency-Key` is still in progress (`conflict`)",
    413: "The body is over the size limit (`payload_too_large`)",
    415: "The body is not JSON, or there is none (`unsupported_media_type`)",
    422: "Invalid input (`invalid_request`, `invalid_phone_number`, `invalid_email_address`, "
    "`idempotency_key_reused`)",
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


# Every /v1 route: its key is looked up, and the database and Redis are behind it. The rest
# each route lists itself: 403 where a scope is needed, 413 and 415 where it takes a body, ….
KEYED = problems(401, 503)
_FASTAPI_422 = "#/components/schemas/HTTPValidationError"


def install_schema(app: FastAPI, settings: Settings) -> None:
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
            _drop_fastapi_422(document)
            _no_null_parameters(document)
            # What a webhook URL may be depends on the configuration (https only outside
            # development): the document says what this server takes.
            url = schemas["WebhookEndpointCreate"]["properties"]["url"]
            url["pattern"] = webhooks.url_pattern(settings)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _no_null_parameters(document: dict[str, Any]) -> None:
    """A query parameter or a header is there or not; it is never null. FastAPI writes an
    optional one as "string or null", which a generated client takes at its word."""
    for operations in document["paths"].values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                schema = parameter["schema"]
                kinds = schema.get("anyOf", [])
                if {"type": "null"} in kinds and len(kinds) == 2:
                    del schema["anyOf"]
                    schema.update(next(kind for kind in kinds if kind != {"type": "null"}))


def _drop_fastapi_422(document: dict[str, Any]) -> None:
    """FastAPI adds a 422 of its own to every route with parameters that does not list one. A
    route that lists none cannot give one (its parameters are plain strings), so it goes."""
    for operations in document["paths"].values():
        for operation in operations.values():
            answer = operation["responses"].get("422", {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref") == _FASTAPI_422:
                del operation["responses"]["422"]
    schemas = document["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
