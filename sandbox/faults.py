"""Failures on demand: latency, 5xx, 20429 throttling, hangs, and per-number refusals; and the
number ranges Lookup answers for (landlines, VoIP, a swapped SIM)."""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.common import TwilioError

# Numbers under these prefixes are refused for good, like Twilio refuses a landline, a pumped
# range or a blocked country. The digits after "555-0" spell the error: 0205 → 60205, ...
# "channels" limits a rule to those channels: a landline takes a call, and Fraud Guard guards
# SMS only (https://www.twilio.com/docs/verify/preventing-toll-fraud/sms-fraud-guard).
DEFAULT_NUMBER_RULES: tuple[dict[str, Any], ...] = (
    {
        "prefix": "+1415555020",
        "status": 403,
        "code": 60205,
        "message": "SMS is not supported by landline phone number",
        "channels": ["sms"],
    },
    {
        "prefix": "+1415555041",
        "status": 403,
        "code": 60410,
        "message": "Verification delivery attempt blocked (Fraud Guard)",
        "channels": ["sms"],
    },
    {
        "prefix": "+1415555060",
        "status": 403,
        "code": 60605,
        "message": "Verification delivery attempt blocked (Geo-Permissions)",
    },
)

# What Lookup v2 answers for a valid number: by range, else DEFAULT_LINE. Every sandbox line is
# on the ITU's test network (MCC 001, MNC 01). A SIM swap is that many hours before the request,
# on the sandbox's clock; Lookup's sim_swap package looks 24 hours back.
DEFAULT_LINE: dict[str, Any] = {
    "type": "mobile",
    "carrier_name": "Sandbox Mobile",
    "mobile_country_code": "001",
    "mobile_network_code": "01",
    "sim_swapped_hours_ago": None,
}
LINE_RULES: tuple[dict[str, Any], ...] = (
    {"prefix": "+1415555020", "type": "landline", "carrier_name": "Sandbox Landline"},
    {"prefix": "+1415555030", "type": "nonFixedVoip", "carrier_name": "Sandbox VoIP"},
    {"prefix": "+1415555031", "type": "fixedVoip", "carrier_name": "Sandbox VoIP"},
    {"prefix": "+1415555040", "type": "mobile", "sim_swapped_hours_ago": 1},
)
# The channels a number rule may name.
RULE_CHANNELS = frozenset({"sms", "call", "email", "whatsapp"})

_ERROR_MESSAGES = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class NumberRule:
    prefix: str
    status: int
    code: int
    message: str = "Verification delivery attempt blocked"
    channels: list[str] | None = None  # None: every channel


@dataclass
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    error_code: int | None = None
    throttle_rate: float = 0.0
    timeout_rate: float = 0.0
    hang_seconds: float = 30.0
    # Hold every send until this many requests are in flight at once (at most hang_seconds):
    # shows a client's concurrency, however fast the machine it runs on.
    gather: int = 0
    number_rules: list[NumberRule] = field(
        default_factory=lambda: [NumberRule(**rule) for rule in DEFAULT_NUMBER_RULES]
    )
    seed: int | None = None

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def validate(self) -> None:
        for name in ("error_rate", "throttle_rate", "timeout_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.error_rate + self.throttle_rate + self.timeout_rate > 1.0:
            raise ValueError("error_rate + throttle_rate + timeout_rate must not exceed 1")
        if not 500 <= self.error_status <= 599:
            raise ValueError("error_status must be a 5xx status")
        if self.latency_ms < 0 or self.jitter_ms < 0 or self.hang_seconds < 0:
            raise ValueError("latency_ms, jitter_ms and hang_seconds must not be negative")
        if self.gather < 0:
            raise ValueError("gather must not be negative")
        if self.jitter_ms > self.latency_ms:
            raise ValueError("jitter_ms must not exceed latency_ms")
        for rule in self.number_rules:
            if not rule.prefix.startswith("+") or not 400 <= rule.status <= 499:
                raise ValueError("a number rule needs a '+' prefix and a 4xx status")
            if rule.channels is not None and not set(rule.channels) <= RULE_CHANNELS:
                raise ValueError(f"a number rule's channels must be among {sorted(RULE_CHANNELS)}")

    @classmethod
    def from_json(cls, data: dict[str, Any], base: Faults | None = None) -> Faults:
        """Apply ``data`` over ``base`` (or the defaults); unknown keys are an error."""
        current = asdict(base) if base is not None else asdict(cls())
        unknown = set(data) - set(current)
        if unknown:
            raise ValueError(f"unknown fault settings: {', '.join(sorted(unknown))}")
        current.update(data)
        rules = [
            rule if isinstance(rule, NumberRule) else NumberRule(**rule)
            for rule in current.pop("number_rules")
        ]
        try:
            faults = cls(**current, number_rules=rules)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc
        faults.validate()
        return faults

    @classmethod
    def from_env(cls) -> Faults:
        """``TWOSTEP_SANDBOX_FAULTS`` holds the same JSON as ``PUT /sandbox/faults``."""
        raw = os.environ.get("TWOSTEP_SANDBOX_FAULTS")
        return cls.from_json(json.loads(raw)) if raw else cls()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def latency_seconds(self) -> float:
        if self.latency_ms <= 0:
            return 0.0
        spread = self._random.uniform(-self.jitter_ms, self.jitter_ms)
        return max(self.latency_ms + spread, 0.0) / 1000

    def draw(self) -> str | None:
        """One request's fate: None (answer normally), "error", "throttle" or "timeout"."""
        roll = self._random.random()
        for kind, rate in (
            ("error", self.error_rate),
            ("throttle", self.throttle_rate),
            ("timeout", self.timeout_rate),
        ):
            if roll < rate:
                return kind
            roll -= rate
        return None

    def injected_error(self, kind: str) -> TwilioError:
        if kind == "throttle":
            return TwilioError(429, 20429, "Too many requests")
        code = self.error_code or 20000 + self.error_status
        return TwilioError(
            self.error_status, code, _ERROR_MESSAGES.get(self.error_status, "Server Error")
        )

    def number_refusal(self, to: str, channel: str) -> TwilioError | None:
        for rule in self.number_rules:
            if to.startswith(rule.prefix) and (rule.channels is None or channel in rule.channels):
                return TwilioError(rule.status, rule.code, rule.message)
        return None
