"""The OpenAPI document, made to generate exact clients (tests/typescript types a login server
with it): what each route can answer besides success, as ``application/problem+json`` with one
``Problem`` schema (the shape ``api.errors.problem`` writes) whose ``code`` is an enum; every
header an answer carries; and optional meaning optional — a field a request may leave out is
not ``required`` whatever its default, and a field an answer leaves out is never ``null``.
FastAPI's own 422 (``HTTPValidationError``, a shape this API never sends) is taken out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field

from api.errors import PROBLEM_JSON, problem_codes
from shared.kit.settings import Settings
from shared.webhooks import service as webhooks

_SCHEMAS = "#/components/schemas/"
_HEADERS = "#/components/headers/"


class FieldProblem(BaseModel):
    field: str = Field(description="The offending field, dotted; empty for the whole body")
    message: str
    type: str


class Problem(BaseModel):
    """RFC 9457 problem details, with a stable ``code`` to branch on."""

    type: str
    title: str
    status: int
    detail: str = Field(description="What is wrong and, where there is one, what to do")
    code: str = Field(description="Stable snake_case word: see the table of errors in docs/api.md")
    limit: str | None = Field(default=None, description="On 429 only: which limit refused")
    errors: list[FieldProblem] | None = Field(
        default=None, description="On 422 only: what is wrong, field by field"
    )


# Present only where they say; never null.
_ABSENT_UNLESS_SAID = ("limit", "errors")

_SAYS = {
    401: "No, a malformed, an unknown or a revoked API key (`unauthorized`)",
    403: "The key lacks the route's scope (`insufficient_scope`), or the destination's country "
    "is not allowed (`country_not_allowed`)",
    404: "No such id for this key's tenant, or not an id at all (`not_found`)",
    405: "The path does not take this method (`method_not_allowed`); `Allow` lists those it takes",
    409: "Not possible in the current state (`verification_not_pending`, "
    "`no_verified_factor`, `factor_not_verified`, `channel_mismatch`, `last_strong_factor`, "
    "`passkeys_not_set_up`), or a request with this `Idempotency-Key` is still in progress "
    "(`conflict`)",
    413: "The body is over the size limit (`payload_too_large`), on any route, before it is "
    "read or authenticated",
    415: "The body is not JSON, or there is none (`unsupported_media_type`)",
    422: "Invalid input (`invalid_request`, `invalid_phone_number`, `invalid_email_address`, "
    "`idempotency_key_reused`)",
    429: "A limit refused it (`rate_limited`, `max_attempts_reached`, `user_locked`)",
    503: "The database or Redis is unreachable; limits fail closed (`service_unavailable`)",
    500: "Something went wrong on our side (`internal_error`): a bug, logged with its traceback",
}
# Which answer headers each problem status carries, besides those every answer does.
_PROBLEM_HEADERS = {
    401: ("WWW-Authenticate",),
    405: ("Allow",),
    429: ("Retry-After",),
    503: ("Retry-After",),
}
_HEADER_SAYS: dict[str, dict[str, Any]] = {
    "X-Request-Id": {
        "description": "This request's id: the caller's `X-Request-Id` if it sent 8 to 64 "
        "letters, digits and `._:-`, else a new one. Its log lines and jobs carry it",
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "Every `/v1` answer: no proxy or browser may keep it",
        "schema": {"type": "string", "enum": ["no-store"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before trying again",
        "schema": {"type": "integer", "minimum": 1},
    },
    "WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}},
    "Allow": {"description": "The methods the path takes", "schema": {"type": "string"}},
    "Location": {"description": "Where the created row is read", "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "Present (`true`) when this is the stored answer to an earlier request "
        "with the same `Idempotency-Key`: nothing was done again",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
_SOMETIMES = frozenset({"Idempotent-Replayed"})


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route or router: these error answers, as problems."""
    return {
        status: {
            "description": _SAYS[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": f"{_SCHEMAS}Problem"}}},
        }
        for status in statuses
    }


# Every /v1 route: its key is looked up, and the database and Redis are behind it. The rest
# each route lists itself: 403 where a scope is needed, 415 where it takes a body, ….
KEYED = problems(401, 503)
# Every route: the router and the body limit answer these before any route is reached, and a
# bug anywhere is a 500.
_EVERY_ROUTE = (405, 413, 500)
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
            _add_problems(document)
            _drop_fastapi_422(document)
            _no_null_parameters(document)
            _optional_means_optional(document)
            _declare_headers(document)
            _typed_alternatives(document)
            # What a webhook URL may be depends on the configuration (https only outside
            # development): the document says what this server takes.
            schemas = document["components"]["schemas"]
            url = schemas["WebhookEndpointCreate"]["properties"]["url"]
            url["pattern"] = webhooks.url_pattern(settings)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override


def _add_problems(document: dict[str, Any]) -> None:
    """``Problem`` and ``ProblemCode`` in the components; 405, 413 and 500 on every route."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    definitions = Problem.model_json_schema(ref_template=f"{_SCHEMAS}{{model}}")
    schemas.update(definitions.pop("$defs", {}))
    for name in _ABSENT_UNLESS_SAID:
        field = definitions["properties"][name]
        del field["default"]
        field.update(next(kind for kind in field.pop("anyOf") if kind != {"type": "null"}))
    code = definitions["properties"]["code"]
    definitions["properties"]["code"] = {"$ref": f"{_SCHEMAS}ProblemCode"}
    schemas["ProblemCode"] = {
        **code,
        "type": "string",
        "title": "ProblemCode",
        "enum": problem_codes(),
    }
    schemas["Problem"] = definitions
    for operation in _operations(document):
        operation["responses"].update(
            {str(status): answer for status, answer in problems(*_EVERY_ROUTE).items()}
        )


def _declare_headers(document: dict[str, Any]) -> None:
    """Every answer's headers: its request id, ``no-store`` under /v1, ``Retry-After`` and the
    like on the problems that carry them, ``Location`` and ``Idempotent-Replayed`` on a POST
    answered once per ``Idempotency-Key``."""
    document["components"]["headers"] = {
        name: {**said, "required": name not in _SOMETIMES} for name, said in _HEADER_SAYS.items()
    }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            answered_once = any(
                parameter["in"] == "header" and parameter["name"] == "Idempotency-Key"
                for parameter in operation.get("parameters", [])
            )
            for status, answer in operation["responses"].items():
                names = ["X-Request-Id"]
                if path.startswith("/v1/"):
                    names.append("Cache-Control")
                names.extend(_PROBLEM_HEADERS.get(int(status), ()))
                if answered_once and status.startswith("2"):
                    names.extend(("Location", "Idempotent-Replayed"))
                answer["headers"] = {name: {"$ref": f"{_HEADERS}{name}"} for name in names}


def _optional_means_optional(document: dict[str, Any]) -> None:
    """A request's field with a default may be left out; generators (openapi-typescript) take a
    ``default`` in a shared schema to mean "always there", right for answers, wrong for
    requests. So a request schema says its defaults in words, not as ``default``."""
    schemas = document["components"]["schemas"]
    for name in _request_schemas(document):
        for field in schemas[name].get("properties", {}).values():
            if "default" in field:
                said = f"Default: `{json.dumps(field.pop('default'))}`"
                described = field.get("description")
                field["description"] = f"{described.rstrip('.')}. {said}" if described else said


def _request_schemas(document: dict[str, Any]) -> set[str]:
    """The component schemas a request body refers to, directly or through another."""
    schemas = document["components"]["schemas"]
    pending = [
        media["schema"]
        for operation in _operations(document)
        for media in operation.get("requestBody", {}).get("content", {}).values()
    ]
    found: set[str] = set()
    while pending:
        for node in _objects(pending.pop()):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(_SCHEMAS) and ref not in found:
                found.add(ref)
                pending.append(schemas[ref.removeprefix(_SCHEMAS)])
    return {ref.removeprefix(_SCHEMAS) for ref in found}


def _typed_alternatives(document: dict[str, Any]) -> None:
    """Pydantic writes ``{"type": "string", "anyOf": [{"pattern"}, {"format"}]}``: valid, but a
    generator reads each untyped branch as ``unknown``. Each branch says its type."""
    for node in _objects(document["components"]["schemas"]):
        kind = node.get("type")
        for branch in node.get("anyOf", []):
            if kind is not None and "type" not in branch and "$ref" not in branch:
                branch["type"] = kind


def _objects(root: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``root``, itself included."""
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, dict):
            yield node
            pending.extend(node.values())


def _no_null_parameters(document: dict[str, Any]) -> None:
    """A query parameter or a header is there or not; it is never null. FastAPI writes an
    optional one as "string or null", which a generated client takes at its word."""
    for operation in _operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            kinds = schema.get("anyOf", [])
            if {"type": "null"} in kinds and len(kinds) == 2:
                del schema["anyOf"]
                schema.update(next(kind for kind in kinds if kind != {"type": "null"}))


def _drop_fastapi_422(document: dict[str, Any]) -> None:
    """FastAPI adds a 422 of its own to every route with parameters that does not list one. A
    route that lists none cannot give one (its parameters are plain strings), so it goes."""
    for operation in _operations(document):
        answer = operation["responses"].get("422", {})
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        if schema.get("$ref") == _FASTAPI_422:
            del operation["responses"]["422"]
    schemas = document["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [operation for item in document["paths"].values() for operation in item.values()]
