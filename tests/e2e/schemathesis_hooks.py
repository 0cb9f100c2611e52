"""Loaded by schemathesis (``SCHEMATHESIS_HOOKS``) in ``test_contract.py``.

``positive_data_acceptance`` expects every request the document calls valid to be taken (or
refused for a reason it knows: 401, 403, 404, 409, 429). Three refusals of valid requests are
right, and no document can foresee them; only those are let through, each by its exact answer:

- a phone number of E.164's shape that no country's numbering plan has (``+10``): the pattern
  says what a number looks like, the phone library (not a regex) knows which ones exist. It
  answers ``invalid_phone_number`` without ``errors``, which only input that fails the
  document itself carries;
- an address JSON Schema's ``format: email`` allows but no mailbox can have: a special-use
  domain (``.test``, ``.localhost``: RFC 6761), an address literal, a quoted local part.
  ``email-validator`` knows them, as the phone library knows numbers; ``invalid_email_address``
  without ``errors`` again;
- an ``Idempotency-Key`` the fuzzer drew before, for another request: refused as the IETF draft
  on the header asks, ``422 idempotency_key_reused``. Whether a key was used is state, not
  shape.

Every other failure, of any check, is kept.
"""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.core.failures import Failure
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.hooks import HookContext
from schemathesis.openapi.checks import RejectedPositiveData


@schemathesis.hook
def filter_failure(
    _context: HookContext, failure: Failure, _case: Case[Any], response: Response
) -> bool:
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 422:
        return True
    try:
        problem: Any = response.json()
    except ValueError:
        return True
    if not isinstance(problem, dict):
        return True
    if problem.get("code") in ("invalid_phone_number", "invalid_email_address") and (
        "errors" not in problem
    ):
        return False
    return problem.get("code") != "idempotency_key_reused"
