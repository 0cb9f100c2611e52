"""Loaded by schemathesis (``SCHEMATHESIS_HOOKS``) in ``test_twilio_openapi.py``.

One check of its own, ``twilio_error_body``: Twilio's description declares no error answer (the
trimmed document gives every operation a ``default`` one of Twilio's error schema, whose fields
are all optional), so beside ``response_schema_conformance`` every answer of 400 and above must
be Twilio's error body exactly, as ``tests/sandbox/conftest.py`` asks of the SDK's exchanges:
JSON with ``code``, ``message``, ``more_info`` and ``status`` (a 401 also ``detail``), that
``status`` the answer's own, ``more_info`` the error's page. No failure is filtered.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.checks import CheckContext
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case

_FIELDS = {"code", "message", "more_info", "status"}


@schemathesis.check
def twilio_error_body(_ctx: CheckContext, response: Response, _case: Case[Any]) -> bool | None:
    if response.status_code < 400:
        return None
    try:
        body: Any = response.json()
    except ValueError:
        raise AssertionError(f"a {response.status_code} whose body is not JSON") from None
    if not isinstance(body, dict):
        raise AssertionError(f"a {response.status_code} whose body is not an object: {body!r}")
    fields = set(body) - ({"detail"} if response.status_code == 401 else set())
    if fields != _FIELDS:
        raise AssertionError(f"Twilio's error fields are {sorted(_FIELDS)}, not {sorted(body)}")
    if body["status"] != response.status_code or not isinstance(body["code"], int):
        raise AssertionError(
            f"status {body['status']!r}, code {body['code']!r} in a {response.status_code}"
        )
    if body["more_info"] != f"https://www.twilio.com/docs/errors/{body['code']}":
        raise AssertionError(f"more_info {body['more_info']!r} for code {body['code']}")
    return True
