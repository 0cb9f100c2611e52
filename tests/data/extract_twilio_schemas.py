"""Copy from Twilio's OpenAPI descriptions the schemas the sandbox tests validate against.

    python tests/data/extract_twilio_schemas.py path/to/twilio_verify_v2.json \
        [path/to/twilio_lookups_v2.json]

writes, beside this file:

- ``twilio_verify_v2_schemas.json``: the response schemas of the Verify operations the sandbox
  serves, the inline list wrappers (``ListServiceResponse``, ``ListVerificationAttemptResponse``)
  under their titles, Verify Passkeys' inline answers under ``passkeys.{operationId}``, every
  schema they refer to (at the same JSON pointers, so ``$ref``s
  resolve), and the inline error schema Twilio declares for a 429 on Create Verification;
- ``twilio_lookups_v2_schemas.json``: Lookup v2's ``LookupResponse`` and what it refers to, and
  Twilio's own example answers of ``GET /v2/PhoneNumbers/{PhoneNumber}`` (``x-examples``);
- ``twilio_verify_v2_factors_openapi.json``: a trimmed but runnable OpenAPI document of the
  Factors API operations the sandbox serves (``FACTOR_OPERATIONS``: TOTP factors and their
  challenges), for schemathesis (``tests/sandbox/test_twilio_openapi.py``). Each operation is
  Twilio's own (parameters, request body and its examples, success answer's schema, security)
  less its description, answer examples and CORS answer headers; beside it only the schemas
  those refer to. One thing is added, listed in ``info.x-added``: Twilio documents only success
  answers, so every operation gets a ``default`` answer of Twilio's error body (the schema
  Twilio itself declares for a 429 on Create Verification), against which schemathesis checks
  the sandbox's refusals too.

Twilio's Lookup description types as non-null fields its own examples answer ``null`` (every
unrequested package, ``validation_errors`` of a valid number, ``error_code``...), so under
OpenAPI 3.0 its examples fail its schema. Every property an example shows as null is marked
``nullable`` here (a ``$ref`` one: the schema it names), and listed in ``info.x-nullable``; the
tests check that Twilio's examples then validate. The lookups path defaults to the verify file's
sibling. The source is twilio/twilio-oai (MIT, see ``twilio-oai-LICENSE`` beside this file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

VERIFY_ROOTS = (
    "verify.v2.service",
    "verify.v2.service.verification",
    "verify.v2.service.verification_check",
    "verify.v2.verification_attempt",
    "verify.v2.service.entity.new_factor",
    "verify.v2.service.entity.factor",
    "verify.v2.service.entity.challenge",
)
# Inline list wrappers: (path, method) of the operation whose 200 answer they are.
VERIFY_LISTS = (("/v2/Services", "get"), ("/v2/Attempts", "get"))
LOOKUP_OPERATION = ("/v2/PhoneNumbers/{PhoneNumber}", "get")
# Verify Passkeys' answers are inline and untitled in Twilio's description: kept under
# ``passkeys.`` and their operationId.
PASSKEY_OPERATIONS = ("Factors", "VerifyFactor", "Challenges", "ApproveChallenge")
# The sandbox's Factors routes (``sandbox/factor_routes.py``), by Twilio's operationId; Twilio's
# Entities, list and Notifications operations are not served, so not kept.
FACTOR_OPERATIONS = (
    "CreateNewFactor",
    "FetchFactor",
    "UpdateFactor",
    "DeleteFactor",
    "CreateChallenge",
    "FetchChallenge",
    "UpdateChallenge",
)
# What an operation keeps of Twilio's description; an answer keeps its description and schema.
_OPERATION_KEYS = ("operationId", "summary", "tags", "parameters", "requestBody", "security")
COMMIT = "d50069b44ea8cd23141385bdb6db48f16ff75bb5"
HERE = Path(__file__).parent


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def _closure(schemas: dict[str, Any], roots: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    """``roots`` (and ``extra``, not in ``schemas``) with every schema they refer to."""
    wanted: dict[str, Any] = {}
    todo = list(roots) + [ref.rsplit("/", 1)[1] for ref in _refs(extra)]
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted[name] = schemas[name]
        todo += [ref.rsplit("/", 1)[1] for ref in _refs(schemas[name])]
    return {**dict(sorted(wanted.items())), **extra}


def _answer(spec: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    answer: dict[str, Any] = spec["paths"][path][method]["responses"]["200"]["content"][
        "application/json"
    ]
    return answer


def _document(spec: dict[str, Any], source: str, schemas: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": spec["openapi"],
        "info": {
            "title": spec["info"]["title"],
            "x-source": source,
            "x-license": "MIT, Copyright (C) 2023, Twilio, Inc.: see twilio-oai-LICENSE",
        },
        "components": {"schemas": schemas},
    }


def verify_subset(spec: dict[str, Any]) -> dict[str, Any]:
    lists = {}
    for path, method in VERIFY_LISTS:
        schema = _answer(spec, path, method)["schema"]
        lists[schema["title"]] = schema
    for name in PASSKEY_OPERATIONS:
        operation = spec["paths"][f"/v2/Services/{{ServiceSid}}/Passkeys/{name}"]["post"]
        [(_status, answer)] = operation["responses"].items()
        lists[f"passkeys.{operation['operationId']}"] = answer["content"]["application/json"][
            "schema"
        ]
    schemas = _closure(spec["components"]["schemas"], list(VERIFY_ROOTS), lists)
    source = f"twilio/twilio-oai spec/json/twilio_verify_v2.json at {COMMIT}"
    return _document(spec, source, {**schemas, "twilio.error": _error_schema(spec)})


def _error_schema(spec: dict[str, Any]) -> dict[str, Any]:
    """The one error body Twilio's Verify description declares (a 429 on Create Verification)."""
    create = spec["paths"]["/v2/Services/{ServiceSid}/Verifications"]["post"]
    schema: dict[str, Any] = create["responses"]["429"]["content"]["application/json"]["schema"]
    return schema


def _trimmed_operation(operation: dict[str, Any]) -> dict[str, Any]:
    kept = {key: operation[key] for key in _OPERATION_KEYS if key in operation}
    responses: dict[str, Any] = {}
    for status, answer in operation["responses"].items():
        responses[status] = {"description": answer["description"]}
        if "content" in answer:
            responses[status]["content"] = {
                media: {"schema": body["schema"]} for media, body in answer["content"].items()
            }
    responses["default"] = {
        "description": "Twilio's error body (added: see info.x-added)",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/twilio.error"}}},
    }
    kept["responses"] = responses
    return kept


def factors_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and operation.get("operationId") in FACTOR_OPERATIONS:
                paths.setdefault(path, {})[method] = _trimmed_operation(operation)
                found.append(operation["operationId"])
    if sorted(found) != sorted(FACTOR_OPERATIONS):
        raise SystemExit(f"expected the operations {FACTOR_OPERATIONS}, found {found}")
    extra = {"twilio.error": _error_schema(spec)}
    roots = sorted({ref.rsplit("/", 1)[1] for ref in _refs(paths)} - set(extra))
    schemas = _closure(spec["components"]["schemas"], roots, extra)
    source = f"twilio/twilio-oai spec/json/twilio_verify_v2.json at {COMMIT}"
    document = _document(spec, source, schemas)
    document["info"]["version"] = spec["info"]["version"]
    document["info"]["x-operations"] = list(FACTOR_OPERATIONS)
    document["info"]["x-added"] = [
        "responses.default of every operation: Twilio's error body, components.schemas."
        "twilio.error (Twilio declares it inline, for a 429 on Create Verification only)"
    ]
    document["paths"] = dict(sorted(paths.items()))
    document["security"] = spec["security"]
    document["components"]["securitySchemes"] = spec["components"]["securitySchemes"]
    return {key: document[key] for key in ("openapi", "info", "security", "paths", "components")}


def _mark_nullable(
    schemas: dict[str, Any], name: str, value: dict[str, Any], marked: set[str]
) -> None:
    """Mark nullable every property of ``name`` that ``value`` (an example) has as null."""
    properties = schemas[name].get("properties", {})
    for key, item in value.items():
        prop = properties.get(key)
        if prop is None:
            continue
        target_name = prop["$ref"].rsplit("/", 1)[1] if "$ref" in prop else None
        if item is None:
            target = schemas[target_name] if target_name else prop
            if "type" in target and not target.get("nullable"):
                target["nullable"] = True
                marked.add(target_name or f"{name}.{key}")
        elif isinstance(item, dict) and target_name:
            _mark_nullable(schemas, target_name, item, marked)


def lookups_subset(spec: dict[str, Any]) -> dict[str, Any]:
    answer = _answer(spec, *LOOKUP_OPERATION)
    root = answer["schema"]["$ref"].rsplit("/", 1)[1]
    schemas = _closure(spec["components"]["schemas"], [root], {})
    examples = {name: example["value"] for name, example in answer["examples"].items()}
    marked: set[str] = set()
    for example in examples.values():
        _mark_nullable(schemas, root, example, marked)
    source = f"twilio/twilio-oai spec/json/twilio_lookups_v2.json at {COMMIT}"
    document = _document(spec, source, schemas)
    document["info"]["x-nullable"] = sorted(marked)
    document["x-examples"] = examples
    return document


def main(verify_path: str, lookups_path: str | None = None) -> None:
    verify = Path(verify_path)
    lookups = Path(lookups_path) if lookups_path else verify.with_name("twilio_lookups_v2.json")
    verify_spec = json.loads(verify.read_text())
    for name, subset in (
        ("twilio_verify_v2_schemas.json", verify_subset(verify_spec)),
        ("twilio_lookups_v2_schemas.json", lookups_subset(json.loads(lookups.read_text()))),
        ("twilio_verify_v2_factors_openapi.json", factors_openapi(verify_spec)),
    ):
        out = HERE / name
        out.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n")
        print(f"wrote {out} with {len(subset['components']['schemas'])} schemas")  # noqa: T201


if __name__ == "__main__":
    main(*sys.argv[1:3])
