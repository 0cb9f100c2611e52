"""Lookup v2 (``GET /v2/PhoneNumbers/{PhoneNumber}``): validation, line type and SIM swap.

Validity and formats come from libphonenumber (``phonenumbers``), as close to Twilio's own as a
library gets. Line types and SIM swaps come from the number ranges in ``sandbox.faults``
(documented in sandbox/README.md); every other valid number is a mobile with no recent swap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from sandbox.common import TwilioError, format_time
from sandbox.faults import DEFAULT_LINE, LINE_RULES

# Lookup v2's ``Fields`` (the spec's list); "validation" is always answered and has no key.
FIELDS = (
    "validation",
    "caller_name",
    "sim_swap",
    "call_forwarding",
    "line_status",
    "line_type_intelligence",
    "identity_match",
    "reassigned_number",
    "sms_pumping_risk",
    "phone_number_quality_score",
    "pre_fill",
)
SIM_SWAP_PERIOD = timedelta(hours=24)

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "INVALID_COUNTRY_CODE",
    NumberParseException.NOT_A_NUMBER: "NOT_A_NUMBER",
    NumberParseException.TOO_SHORT_AFTER_IDD: "TOO_SHORT",
    NumberParseException.TOO_SHORT_NSN: "TOO_SHORT",
    NumberParseException.TOO_LONG: "TOO_LONG",
}
_POSSIBILITY_ERRORS = {
    ValidationResult.INVALID_COUNTRY_CODE: "INVALID_COUNTRY_CODE",
    ValidationResult.TOO_SHORT: "TOO_SHORT",
    ValidationResult.TOO_LONG: "TOO_LONG",
    ValidationResult.INVALID_LENGTH: "INVALID_LENGTH",
}


@dataclass(frozen=True)
class NumberFacts:
    phone_number: str  # E.164 when valid; as asked when not (Twilio's fetchInvalid example)
    valid: bool
    validation_errors: list[str] | None
    country_code: str | None = None
    calling_country_code: str | None = None
    national_format: str | None = None


def parse_fields(raw: str | None) -> frozenset[str]:
    names = [name.strip() for name in (raw or "").split(",") if name.strip()]
    unknown = sorted({name for name in names if name not in FIELDS})
    if unknown:
        # Twilio documents no answer for an unknown package; its error 60618 is the one for
        # "an invalid value was passed for query parameters" (choice, see sandbox/README.md).
        raise TwilioError(
            400,
            60618,
            f"An invalid value was passed for query parameters: Fields={','.join(unknown)}",
        )
    return frozenset(names)


def analyse(raw: str, country: str | None = None) -> NumberFacts:
    """Parsed as Twilio does: E.164, or national format in ``country`` (default US)."""
    try:
        parsed = phonenumbers.parse(raw, (country or "US").upper())
    except NumberParseException as exc:
        return NumberFacts(raw, False, [_PARSE_ERRORS.get(exc.error_type, "NOT_A_NUMBER")])
    if not phonenumbers.is_valid_number(parsed):
        reason = phonenumbers.is_possible_number_with_reason(parsed)
        return NumberFacts(raw, False, [_POSSIBILITY_ERRORS.get(reason, "INVALID_BUT_POSSIBLE")])
    return NumberFacts(
        phone_number=phonenumbers.format_number(parsed, PhoneNumberFormat.E164),
        valid=True,
        validation_errors=None,
        country_code=phonenumbers.region_code_for_number(parsed),
        calling_country_code=str(parsed.country_code),
        national_format=phonenumbers.format_number(parsed, PhoneNumberFormat.NATIONAL),
    )


@lru_cache(maxsize=65_536)
def region_of(to: str) -> str | None:
    """The ISO country of a number (None for an address or an unparseable value)."""
    if not to.startswith("+"):
        return None
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(to))
    except NumberParseException:
        return None


def line_of(e164: str) -> Mapping[str, Any]:
    for rule in LINE_RULES:
        if e164.startswith(rule["prefix"]):
            return {**DEFAULT_LINE, **rule}
    return DEFAULT_LINE


def line_type_intelligence(e164: str) -> dict[str, Any]:
    line = line_of(e164)
    return {
        "mobile_country_code": line["mobile_country_code"],
        "mobile_network_code": line["mobile_network_code"],
        "carrier_name": line["carrier_name"],
        "type": line["type"],
        "error_code": None,
    }


def sim_swap(e164: str, now: datetime) -> dict[str, Any]:
    line = line_of(e164)
    hours = line.get("sim_swapped_hours_ago")
    swapped_at = now - timedelta(hours=hours) if hours is not None else None
    return {
        "last_sim_swap": {
            "last_sim_swap_date": format_time(swapped_at) if swapped_at else None,
            "swapped_period": "PT24H",
            "swapped_in_period": swapped_at is not None and now - swapped_at <= SIM_SWAP_PERIOD,
        },
        "carrier_name": line["carrier_name"],
        "mobile_country_code": line["mobile_country_code"],
        "mobile_network_code": line["mobile_network_code"],
        "error_code": None,
    }


def verification_lookup(to: str) -> dict[str, Any]:
    """A Verification's ``lookup`` when its service has ``lookup_enabled`` (the spec's shape)."""
    if not to.startswith("+"):
        return {}
    line = line_of(to)
    return {
        "carrier": {
            "mobile_country_code": line["mobile_country_code"],
            "type": line["type"],
            "error_code": None,
            "mobile_network_code": line["mobile_network_code"],
            "name": line["carrier_name"],
        }
    }


def lookup_json(
    raw: str, fields: frozenset[str], country: str | None, now: datetime, base_url: str
) -> dict[str, Any]:
    """The spec's ``LookupResponse``: every key, a package not asked for (or of an invalid
    number) null, as in Twilio's examples."""
    facts = analyse(raw, country)
    answer: dict[str, Any] = {
        "calling_country_code": facts.calling_country_code,
        "country_code": facts.country_code,
        "phone_number": facts.phone_number,
        "national_format": facts.national_format,
        "valid": facts.valid,
        "validation_errors": facts.validation_errors,
    }
    answer.update(dict.fromkeys(FIELDS[1:]))
    if facts.valid:
        if "line_type_intelligence" in fields:
            answer["line_type_intelligence"] = line_type_intelligence(facts.phone_number)
        if "sim_swap" in fields:
            answer["sim_swap"] = sim_swap(facts.phone_number, now)
    answer["url"] = f"{base_url}/v2/PhoneNumbers/{quote(facts.phone_number, safe='+')}"
    return answer
