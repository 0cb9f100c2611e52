"""Lookup v2 through the SDK (lookups.twilio.com, served by the same sandbox)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from twilio.rest import Client

from sandbox.common import parse_time
from sandbox.services import DEFAULT_SERVICE_SID
from tests.sandbox.conftest import (
    LOOKUP_SCHEMAS,
    checked,
    schema_errors,
    schema_properties,
    sdk_client,
    twilio_error,
)
from tests.support import SandboxClient, ThreadedServer, random_phone

PACKAGES = (
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


def test_twilios_own_examples_fit_the_schema_the_answers_are_checked_against() -> None:
    """The extracted schema is Twilio's, nullable where Twilio's examples answer null."""
    examples = LOOKUP_SCHEMAS["x-examples"]
    assert len(examples) >= 10
    for name, example in examples.items():
        assert schema_errors("LookupResponse", example) == [], name
        assert set(example) == schema_properties("LookupResponse"), name
    assert schema_errors("LookupResponse", {"valid": "yes"}) != []


def test_without_fields_only_validation_is_answered(twilio: Client) -> None:
    to = random_phone()
    number = twilio.lookups.v2.phone_numbers(to).fetch()
    assert (number.phone_number, number.valid, number.validation_errors) == (to, True, None)
    assert (number.country_code, number.calling_country_code) == ("US", "1")
    assert number.national_format == f"({to[2:5]}) {to[5:8]}-{to[8:]}"
    assert all(getattr(number, package) is None for package in PACKAGES)
    assert number.url.endswith(f"/v2/PhoneNumbers/{to}")


def test_a_national_number_in_a_given_country(twilio: Client) -> None:
    number = twilio.lookups.v2.phone_numbers("07772 000001").fetch(country_code="GB")
    assert (number.phone_number, number.country_code, number.valid) == ("+447772000001", "GB", True)


@pytest.mark.parametrize(
    ("to", "line_type", "carrier"),
    [
        ("+14155550205", "landline", "Sandbox Landline"),
        ("+14155550301", "nonFixedVoip", "Sandbox VoIP"),
        ("+14155550319", "fixedVoip", "Sandbox VoIP"),
        ("+14155550400", "mobile", "Sandbox Mobile"),
        ("+14155550123", "mobile", "Sandbox Mobile"),
    ],
)
def test_line_type_intelligence_of_the_documented_ranges(
    twilio: Client, to: str, line_type: str, carrier: str
) -> None:
    number = twilio.lookups.v2.phone_numbers(to).fetch(fields="line_type_intelligence")
    assert number.line_type_intelligence == {
        "mobile_country_code": "001",
        "mobile_network_code": "01",
        "carrier_name": carrier,
        "type": line_type,
        "error_code": None,
    }
    assert number.sim_swap is None


def test_sim_swap_an_hour_ago_on_the_sandbox_clock(own_sandbox: ThreadedServer) -> None:
    twilio = sdk_client(own_sandbox.url)
    with SandboxClient(own_sandbox.url) as sandbox:
        sandbox.advance_clock(86_400)
        now = parse_time(sandbox.http.get("/sandbox/clock").json()["now"])
    swapped = twilio.lookups.v2.phone_numbers("+14155550407").fetch(
        fields="sim_swap,line_type_intelligence"
    )
    last = swapped.sim_swap["last_sim_swap"]
    assert (last["swapped_period"], last["swapped_in_period"]) == ("PT24H", True)
    swapped_at = parse_time(last["last_sim_swap_date"])
    assert timedelta(hours=1) <= now - swapped_at <= timedelta(hours=1, seconds=2)
    assert swapped.line_type_intelligence["type"] == "mobile"
    steady = twilio.lookups.v2.phone_numbers(random_phone()).fetch(fields="sim_swap")
    assert steady.sim_swap == {
        "last_sim_swap": {
            "last_sim_swap_date": None,
            "swapped_period": "PT24H",
            "swapped_in_period": False,
        },
        "carrier_name": "Sandbox Mobile",
        "mobile_country_code": "001",
        "mobile_network_code": "01",
        "error_code": None,
    }
    checked(twilio)


@pytest.mark.parametrize(
    ("asked", "error"),
    [
        ("+141599299600", "TOO_LONG"),  # Twilio's own fetchInvalid example
        ("+1415", "TOO_SHORT"),
        ("+999123456", "INVALID_COUNTRY_CODE"),
        ("+14150000000", "INVALID_BUT_POSSIBLE"),
        ("not-a-number", "NOT_A_NUMBER"),
    ],
)
def test_an_invalid_number_is_200_with_the_reason(twilio: Client, asked: str, error: str) -> None:
    number = twilio.lookups.v2.phone_numbers(asked).fetch(fields="line_type_intelligence,sim_swap")
    assert (number.valid, number.validation_errors, number.phone_number) == (False, [error], asked)
    assert (number.country_code, number.national_format) == (None, None)
    assert number.line_type_intelligence is None and number.sim_swap is None


def test_other_documented_fields_answer_null_and_unknown_ones_are_refused(twilio: Client) -> None:
    number = twilio.lookups.v2.phone_numbers(random_phone()).fetch(
        fields="validation,caller_name,line_status,line_type_intelligence"
    )
    assert number.caller_name is None and number.line_status is None
    assert number.line_type_intelligence["type"] == "mobile"
    error = twilio_error(
        lambda: twilio.lookups.v2.phone_numbers(random_phone()).fetch(fields="sim_swap,carrier")
    )
    assert (error.status, error.code) == (400, 60618)
    assert "Fields=carrier" in error.msg


def test_lookups_are_counted_and_fail_on_demand(own_sandbox: ThreadedServer) -> None:
    twilio = sdk_client(own_sandbox.url)
    twilio.lookups.v2.phone_numbers(random_phone()).fetch()
    with SandboxClient(own_sandbox.url) as sandbox:
        sandbox.set_faults(error_rate=1.0, error_status=503)
        error = twilio_error(lambda: twilio.lookups.v2.phone_numbers(random_phone()).fetch())
        assert (error.status, error.code) == (503, 20503)
        stats = sandbox.stats()
    assert stats["requests_by_endpoint"] == {"FetchPhoneNumber": 2}
    assert stats["responses_by_status"] == {"200": 1, "503": 1}
    checked(twilio)


def test_a_service_with_lookup_enabled_answers_the_carrier(twilio: Client) -> None:
    created = twilio.verify.v2.services.create(friendly_name="Looks up", lookup_enabled=True)
    verification = twilio.verify.v2.services(created.sid).verifications.create(
        to="+14155550309", channel="call"
    )
    assert verification.lookup == {
        "carrier": {
            "mobile_country_code": "001",
            "type": "nonFixedVoip",
            "error_code": None,
            "mobile_network_code": "01",
            "name": "Sandbox VoIP",
        }
    }
    plain = twilio.verify.v2.services(DEFAULT_SERVICE_SID).verifications.create(
        to=random_phone(), channel="sms"
    )
    assert plain.lookup == {}
