"""Copy from Twilio's OpenAPI descriptions the schemas the sandbox tests validate against.

    python tests/data/extract_twilio_schemas.py path/to/twilio_verify_v2.json \
        [path/to/twilio_lookups_v2.json]

writes, beside this file:

- ``twilio_verify_v2_schemas.json``: the response schemas of the Verify operations the sandbox
  serves, the inline list wrappers (``ListServiceResponse``, ``ListVerificationAttemptResponse``)
  under their titles, every schema they refer to (at the same JSON pointers, so ``$ref``s
  resolve), and the inline error schema Twilio declares for a 429 on Create Verification;
- ``twilio_lookups_v2_schemas.json``: Lookup v2's ``LookupResponse`` and what it refers to, and
  Twilio's own example answers of ``GET /v2/PhoneNumbers/{PhoneNumber}`` (``x-examples``).

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
    create = spec["paths"]["/v2/Services/{ServiceSid}/Verifications"]["post"]
    error_429 = create["responses"]["429"]["content"]["application/json"]["schema"]
    schemas = _closure(spec["components"]["schemas"], list(VERIFY_ROOTS), lists)
    source = f"twilio/twilio-oai spec/json/twilio_verify_v2.json at {COMMIT}"
    return _document(spec, source, {**schemas, "twilio.error": error_429})


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
    for name, subset in (
        ("twilio_verify_v2_schemas.json", verify_subset(json.loads(verify.read_text()))),
        ("twilio_lookups_v2_schemas.json", lookups_subset(json.loads(lookups.read_text()))),
    ):
        out = HERE / name
        out.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n")
        print(f"wrote {out} with {len(subset['components']['schemas'])} schemas")  # noqa: T201


if __name__ == "__main__":
    main(*sys.argv[1:3])
