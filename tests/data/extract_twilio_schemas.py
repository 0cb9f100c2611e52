"""Copy from Twilio's OpenAPI description the schemas the sandbox tests validate against.

    python tests/data/extract_twilio_schemas.py path/to/twilio_verify_v2.json

writes ``tests/data/twilio_verify_v2_schemas.json``: the response schemas of the operations the
sandbox serves, every schema they refer to (at the same JSON pointers, so ``$ref``s resolve), and
the inline error schema Twilio declares for a 429 on Create Verification. The source is
twilio/twilio-oai (MIT, see ``twilio-oai-LICENSE`` beside this file).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOTS = (
    "verify.v2.service",
    "verify.v2.service.verification",
    "verify.v2.service.verification_check",
)
SOURCE = (
    "twilio/twilio-oai spec/json/twilio_verify_v2.json at d50069b44ea8cd23141385bdb6db48f16ff75bb5"
)


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(value) for value in node))
    return set()


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    schemas = spec["components"]["schemas"]
    wanted: dict[str, Any] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in wanted:
            continue
        wanted[name] = schemas[name]
        todo += [ref.rsplit("/", 1)[1] for ref in _refs(schemas[name])]
    create = spec["paths"]["/v2/Services/{ServiceSid}/Verifications"]["post"]
    error_429 = create["responses"]["429"]["content"]["application/json"]["schema"]
    subset = {
        "openapi": spec["openapi"],
        "info": {"title": spec["info"]["title"], "x-source": SOURCE},
        "components": {"schemas": {**dict(sorted(wanted.items())), "twilio.error": error_429}},
    }
    out = Path(__file__).with_name("twilio_verify_v2_schemas.json")
    out.write_text(json.dumps(subset, indent=1, sort_keys=False) + "\n")
    print(f"wrote {out} with {len(subset['components']['schemas'])} schemas")  # noqa: T201


if __name__ == "__main__":
    main(sys.argv[1])
