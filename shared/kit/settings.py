"""The one settings object. Every process reads its configuration here, once, from the environment.

Names (docs/configuration.md): ``TWOSTEP_*`` for ours, ``TWILIO_*`` for Twilio's.
Durations are seconds (floats) so that ``TWOSTEP_SEND_DEADLINE_SECONDS=90`` reads naturally.
The fields, each with its description, are declared by group in ``shared.kit.setting_groups``;
here they come together with their validators and what is derived from them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache

from cryptography.fernet import Fernet
from pydantic import AliasChoices, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.kit.setting_groups import (
    AbuseProtection,
    Api,
    Deployment,
    Logging,
    Metrics,
    PersonalData,
    Storage,
    Sweeper,
    Timings,
    Twilio,
    TwoStep,
    Webhooks,
    Workers,
)


class MissingSecrets(ValueError):
    """Production was started without the secrets it needs."""


# A service SID the sandbox accepts; only used when no real Twilio credentials are configured.
SANDBOX_SERVICE_SID = "VA" + "0" * 32
SANDBOX_ACCOUNT_SID = "AC" + "0" * 32
# The development credentials the sandbox accepts (and only those, as Twilio accepts only yours).
SANDBOX_AUTH_TOKEN = "sandbox"  # noqa: S105 - a well-known development value, not a secret

# Lookup v2's line_type_intelligence types
# (https://www.twilio.com/docs/lookup/v2-api/line-type-intelligence).
TWILIO_LINE_TYPES = frozenset(
    {
        "mobile",
        "landline",
        "fixedVoip",
        "nonFixedVoip",
        "personal",
        "tollFree",
        "premium",
        "sharedCost",
        "uan",
        "voicemail",
        "pager",
        "unknown",
    }
)


def _comma_separated(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


class Settings(
    BaseSettings,
    Deployment,
    Storage,
    Twilio,
    PersonalData,
    Timings,
    Api,
    TwoStep,
    AbuseProtection,
    Sweeper,
    Workers,
    Webhooks,
    Metrics,
    Logging,
):
    model_config = SettingsConfigDict(
        env_prefix="TWOSTEP_",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, url: str) -> str:
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @field_validator("data_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return _comma_separated(value)

    @field_validator("data_keys")
    @classmethod
    def _fernet_keys(cls, keys: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        for number, key in enumerate(keys, 1):
            try:
                # Strictly: base64 decoding skips what is not of its alphabet, so "OLD;NEW"
                # would pass as OLD alone.
                if not _FERNET_KEY.fullmatch(key.get_secret_value()):
                    raise ValueError("not 44 characters of URL-safe base64")
                Fernet(key.get_secret_value().encode())
            except ValueError as exc:
                raise ValueError(
                    f"key {number} is not a data key: 44 characters of URL-safe base64, as "
                    "twostep keys generate-data-key prints them; separate keys with commas"
                ) from exc
        return keys

    @field_validator("allowed_line_types", mode="before")
    @classmethod
    def _split_line_types(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("allowed_line_types")
    @classmethod
    def _twilio_line_types(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = value - TWILIO_LINE_TYPES
        if unknown:
            raise ValueError(
                f"not Twilio line types: {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(TWILIO_LINE_TYPES))})"
            )
        if not value:
            raise ValueError("name at least one line type codes may go to")
        return value

    @field_validator("allowed_countries", mode="before")
    @classmethod
    def _split_countries(cls, value: object) -> object:
        if isinstance(value, str):
            codes = frozenset(code.strip().upper() for code in value.split(",") if code.strip())
            return codes or None
        return value

    @field_validator("allowed_countries")
    @classmethod
    def _iso_codes(cls, value: frozenset[str] | None) -> frozenset[str] | None:
        for code in value or ():
            if len(code) != 2 or not code.isalpha():
                raise ValueError(f"not an ISO 3166 country code: {code!r}")
        return value

    @field_validator("country_daily_caps")
    @classmethod
    def _caps_by_iso_code(cls, value: dict[str, int]) -> dict[str, int]:
        return {code.upper(): cap for code, cap in value.items()}

    @field_validator("twilio_base_url")
    @classmethod
    def _strip_trailing_slash(cls, url: str | None) -> str | None:
        return url.rstrip("/") if url else url

    @model_validator(mode="after")
    def _credentials_come_together(self) -> Settings:
        if (self.twilio_account_sid is None) != (self.twilio_auth_token is None):
            raise ValueError("set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or neither")
        return self

    def redis_key(self, name: str) -> str:
        return f"{self.redis_key_prefix}twostep:{name}"

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @property
    def webhooks_may_reach_private_networks(self) -> bool:
        if self.webhook_private_networks is None:
            return self.development
        return self.webhook_private_networks

    @property
    def checks_line_types(self) -> bool:
        """The deployment's default for tenants that did not choose."""
        return not self.development if self.line_type_check is None else self.line_type_check

    @property
    def checks_sim_swaps(self) -> bool:
        return not self.development if self.sim_swap_check is None else self.sim_swap_check

    @property
    def docs_public(self) -> bool:
        return self.development if self.public_docs is None else self.public_docs

    @property
    def uses_sandbox(self) -> bool:
        return self.twilio_base_url is not None

    @property
    def code_lifetime(self) -> timedelta:
        return timedelta(seconds=self.code_lifetime_seconds)

    @property
    def send_deadline(self) -> timedelta:
        return timedelta(seconds=self.send_deadline_seconds)

    @property
    def check_deadline(self) -> timedelta:
        return timedelta(seconds=self.check_deadline_seconds)

    @property
    def idempotency_ttl(self) -> timedelta:
        return timedelta(seconds=self.idempotency_ttl_seconds)

    @property
    def resend_cooldown(self) -> timedelta:
        return timedelta(seconds=self.resend_cooldown_seconds)

    @property
    def claim_lease(self) -> timedelta:
        return timedelta(seconds=self.claim_lease_seconds)

    @property
    def requeue_after(self) -> timedelta:
        return timedelta(seconds=self.requeue_after_seconds)


_FERNET_KEY = re.compile(r"[A-Za-z0-9_-]{43}=")


class InvalidSettings(ValueError):
    """The environment holds settings that cannot be read: one line per variable, naming it and
    what is wrong, never its value (it may be a secret)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(f"  - {problem}" for problem in problems))
        self.problems = problems


def read_settings() -> Settings:
    """The settings from the environment, or ``InvalidSettings`` saying what to fix."""
    try:
        return Settings()
    except ValidationError as exc:
        raise InvalidSettings([_problem(error) for error in exc.errors()]) from None


def _problem(error: ErrorDetails) -> str:
    field = str(error["loc"][0]) if error["loc"] else ""
    message = error["msg"].removeprefix("Value error, ")
    return f"{_variable(field)}: {message}"


def _variable(field: str) -> str:
    """The environment variable a field is read from."""
    known = Settings.model_fields.get(field)
    alias = known.validation_alias if known is not None else None
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0]
    if field.isupper():  # the loc of an aliased field is its alias already
        return field
    return f"{Settings.model_config.get('env_prefix', '')}{field.upper()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return read_settings()
