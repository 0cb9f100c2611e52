"""The sandbox's state in Twilio's answer shapes (snake_case JSON, Twilio's timestamps)."""

from __future__ import annotations

from typing import Any

from sandbox.common import format_time
from sandbox.services import Service
from sandbox.state import Message, Verification, VerifyState

_SERVICE_LINKS = {
    "verification_checks": "VerificationCheck",
    "verifications": "Verifications",
    "rate_limits": "RateLimits",
    "messaging_configurations": "MessagingConfigurations",
    "entities": "Entities",
    "webhooks": "Webhooks",
    "access_tokens": "AccessTokens",
}


def service_json(service: Service, base_url: str) -> dict[str, Any]:
    url = f"{base_url}/v2/Services/{service.sid}"
    return {
        "sid": service.sid,
        "account_sid": service.account_sid,
        "friendly_name": service.friendly_name,
        # In Twilio's order already (services.DEFAULT_SETTINGS), grouped settings nested.
        **service.settings,
        "date_created": format_time(service.created_at),
        "date_updated": format_time(service.updated_at),
        "url": url,
        "links": {name: f"{url}/{path}" for name, path in _SERVICE_LINKS.items()},
    }


def verification_json(verification: Verification, base_url: str) -> dict[str, Any]:
    return {
        "sid": verification.sid,
        "service_sid": verification.service_sid,
        "account_sid": verification.account_sid,
        "to": verification.to,
        "channel": verification.channel,
        "status": verification.status,
        "valid": verification.valid,
        "date_created": format_time(verification.created_at),
        "date_updated": format_time(verification.updated_at),
        "lookup": verification.lookup,
        "amount": None,
        "payee": None,
        "send_code_attempts": [
            {
                "time": format_time(attempt.time),
                # Upper case for SMS and calls, as in the spec's examples.
                "channel": attempt.channel.upper()
                if attempt.channel in ("sms", "call")
                else attempt.channel,
                "attempt_sid": attempt.attempt_sid,
            }
            for attempt in verification.send_attempts
        ],
        "sna": None,
        "url": (
            f"{base_url}/v2/Services/{verification.service_sid}/Verifications/{verification.sid}"
        ),
    }


def check_json(verification: Verification) -> dict[str, Any]:
    return {
        "sid": verification.sid,
        "service_sid": verification.service_sid,
        "account_sid": verification.account_sid,
        "to": verification.to,
        "channel": verification.channel,
        "status": verification.status,
        "valid": verification.valid,
        "amount": None,
        "payee": None,
        "sna_attempts_error_codes": [],
        "date_created": format_time(verification.created_at),
        "date_updated": format_time(verification.updated_at),
    }


def message_json(message: Message) -> dict[str, Any]:
    return {
        "to": message.to,
        "channel": message.channel,
        "code": message.code,
        "body": message.body,
        "service_sid": message.service_sid,
        "verification_sid": message.verification_sid,
        "created_at": format_time(message.created_at),
    }


def clock_json(state: VerifyState) -> dict[str, Any]:
    return {
        "now": format_time(state.clock.now()),
        "offset_seconds": state.clock.offset.total_seconds(),
    }
