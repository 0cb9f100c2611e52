"""The one settings object. Every process reads its configuration here, once, from the environment.

Names are those of the architecture's §6: ``TWOSTEP_*`` for ours, ``TWILIO_*`` for Twilio's.
Durations are seconds (floats) so that ``TWOSTEP_SEND_DEADLINE_SECONDS=90`` reads naturally.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Literal

from cryptography.fernet import Fernet
from limits import parse as parse_rate_limit
from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.kit.crypto import DEVELOPMENT_DATA_KEY, DEVELOPMENT_LOOKUP_KEY, Keyring, keyring_for

PositiveSeconds = Annotated[float, Field(gt=0)]


class MissingSecrets(ValueError):
    """Production was started without the secrets it needs."""


def _valid_rate_limit(value: str) -> str:
    try:
        parse_rate_limit(value)
    except ValueError as exc:
        raise ValueError(f"not a rate limit like '5 per 10 minutes': {value!r}") from exc
    return value


RateLimit = Annotated[str, AfterValidator(_valid_rate_limit)]

# A service SID the sandbox accepts; only used when no real Twilio credentials are configured.
SANDBOX_SERVICE_SID = "VA" + "0" * 32
SANDBOX_ACCOUNT_SID = "AC" + "0" * 32
# The development credentials the sandbox accepts (and only those, as Twilio accepts only yours).
SANDBOX_AUTH_TOKEN = "sandbox"  # noqa: S105 - a well-known development value, not a secret

Environment = Literal["production", "development"]
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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TWOSTEP_",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    # --- the kind of deployment. Production refuses what is only fit for a laptop: development
    # keys, no country allow-list, a Twilio base URL off loopback (see shared/kit/startup.py).
    environment: Environment = "production"

    # --- storage and broker
    database_url: str = "sqlite:///twostep.db"
    redis_url: str = "redis://localhost:6379/0"
    # With TWOSTEP_REDIS_URL=sentinel://…: the name Sentinel knows the primary by.
    redis_sentinel_master: str = "mymaster"
    # Put before every key twostep and Celery write to Redis, so deployments can share one.
    redis_key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{0,64}$")] = ""
    # Database connections per process. A request or a job holds one only while it talks to the
    # database (never across Redis or a provider call), so a few serve hundreds of requests.
    database_pool_size: Annotated[int, Field(ge=1, le=200)] = 10

    # --- Twilio (or the sandbox when twilio_base_url is set)
    twilio_account_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_ACCOUNT_SID")
    )
    twilio_auth_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN")
    )
    twilio_verify_service_sid: str | None = Field(
        default=None, validation_alias=AliasChoices("TWILIO_VERIFY_SERVICE_SID")
    )
    twilio_base_url: str | None = None
    # Twilio publishes no latency SLA; a Verify create is usually well under a second.
    twilio_connect_timeout_seconds: PositiveSeconds = 3.05
    twilio_read_timeout_seconds: PositiveSeconds = 10.0

    # --- personal data at rest (shared/kit/crypto.py)
    # Fernet keys, comma-separated, newest first: the first encrypts, all decrypt.
    data_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    # The secret of the keyed hashes that stand in for phone numbers, IPs and user ids in
    # look-ups and in Redis keys. Not a data key: rotating data keys leaves it as it is.
    lookup_key: SecretStr | None = None
    # Verifications, checks and events older than this are deleted by beat.
    retention_days: Annotated[int, Field(ge=1, le=3650)] = 90
    # Largest request body the API reads; bigger ones are refused before they are parsed.
    max_body_bytes: Annotated[int, Field(ge=1024, le=1_048_576)] = 16_384
    # Serve /docs and /openapi.json without a key (default: in development only).
    public_docs: bool | None = None

    # --- verification timings
    # At most Twilio Verify's own lifetime of a code (10 minutes): a longer one would outlive
    # the verification it checks against.
    code_lifetime_seconds: Annotated[float, Field(gt=0, le=600)] = 600.0
    # A code that arrives after this is useless to a user waiting at a login screen.
    send_deadline_seconds: PositiveSeconds = 120.0
    check_deadline_seconds: PositiveSeconds = 30.0
    max_check_attempts: Annotated[int, Field(ge=1, le=5)] = 5
    # How long a worker's claim on a row lasts before another worker may take it over.
    claim_lease_seconds: PositiveSeconds = 30.0
    retry_backoff_base_seconds: PositiveSeconds = 1.0
    retry_backoff_max_seconds: PositiveSeconds = 20.0

    # --- API
    # How long an Idempotency-Key's first answer is replayed for repeats.
    idempotency_ttl_seconds: PositiveSeconds = 86_400.0
    # API keys are looked up once per this many seconds per process: a revoked key stops
    # working within that time. 0 looks every key up on every request.
    api_key_cache_seconds: Annotated[float, Field(ge=0, le=300)] = 5.0
    # Requests one API process holds in a long-poll (?wait=) at once; past it, they answer at
    # once with the current state.
    max_waiters: Annotated[int, Field(ge=0)] = 5000

    # --- two-step authentication
    # Refuse to enrol a phone that is verified for another user: one phone, one account.
    one_user_per_phone: bool = True
    # Number checks through Twilio Lookup v2 (NIST SP 800-63B 5.1.3.3), each a provider call the
    # worker makes before a send. A tenant may choose otherwise (twostep tenants). Unset: on in
    # production, off in development.
    # At enrolment, the line type: refuse a number whose type is not allowed (VoIP, landline...).
    line_type_check: bool | None = None
    # Twilio's line types, comma-separated: mobile, landline, fixedVoip, nonFixedVoip, personal,
    # tollFree, premium, sharedCost, uan, voicemail, pager, unknown.
    allowed_line_types: Annotated[frozenset[str], NoDecode] = frozenset({"mobile"})
    # A number's line type is asked once per this long (it rarely changes).
    line_type_cache_seconds: PositiveSeconds = 30 * 86_400.0
    # At each SMS or voice login, whether the number's SIM changed within the window: then codes
    # by SMS or call are refused for that login (recovery codes still work).
    sim_swap_check: bool | None = None
    sim_swap_window_seconds: PositiveSeconds = 3 * 86_400.0

    # --- abuse protection: every limit is counted in Redis, shared by every process.
    # Send limits use the `limits` library's syntax: "N per [count] second|minute|hour|day".
    limit_per_destination: RateLimit = "5 per 10 minutes"  # Twilio's own per-number limit
    limit_per_user: RateLimit = "10 per hour"
    limit_per_client_ip: RateLimit = "30 per hour"
    limit_per_api_key: RateLimit = "300 per minute"
    limit_per_country: RateLimit = "1000 per day"
    # Spending caps over a day, counted from the first send of the day's window.
    limit_per_api_key_daily: RateLimit = "5000 per day"
    limit_global_daily: RateLimit = "20000 per day"  # the whole deployment: every tenant, every key
    # At this share of a daily cap, a metric and a warning say it is near.
    cap_warning_ratio: Annotated[float, Field(gt=0, le=1)] = 0.8
    # Per-country daily caps that replace limit_per_country, e.g. {"US": 100000, "GB": 20000}.
    country_daily_caps: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    resend_cooldown_seconds: PositiveSeconds = 30.0
    # ISO 3166 codes, comma-separated; unset means every country.
    allowed_countries: Annotated[frozenset[str] | None, NoDecode] = None
    # Keycloak-style lockout on wrong codes per user: every `lockout_failures` failures lock the
    # user for wait_increment times (failures / lockout_failures), at most max_wait; failures are
    # forgotten after failure_reset without one, or at a right code.
    lockout_failures: Annotated[int, Field(ge=1)] = 5
    lockout_wait_increment_seconds: PositiveSeconds = 60.0
    lockout_max_wait_seconds: PositiveSeconds = 900.0
    lockout_failure_reset_seconds: PositiveSeconds = 43_200.0
    # After this many wrong codes without a right one (NIST SP 800-63B: at most 100), the user or
    # number stays locked until an admin key releases it.
    lockout_hard_failures: Annotated[int, Field(ge=1)] = 100
    # New sets of recovery codes per user.
    limit_recovery_code_sets: RateLimit = "5 per day"
    # The whole fleet's rate of Twilio requests (the account's limit), and the burst above it.
    provider_rate: Annotated[float, Field(gt=0)] = 30.0
    provider_burst: Annotated[int, Field(ge=1)] = 10
    # The whole fleet's Twilio requests in flight at once; Twilio answers 20429 past an
    # account's concurrency.
    provider_max_in_flight: Annotated[int, Field(ge=1)] = 100

    # --- sweeper (twostep beat)
    sweep_interval_seconds: PositiveSeconds = 5.0
    # A row still queued this long after its last enqueue is assumed to have lost its message.
    requeue_after_seconds: PositiveSeconds = 15.0

    # --- workers
    # Celery task events for Flower at all times, also "sent" ones from the API. Off, Flower
    # still sees every task once a worker receives it: it turns events on while it runs.
    task_events: bool = False
    # Jobs one worker process runs at once. A job waiting on Twilio holds no database
    # connection and burns no CPU, so hundreds are cheap (see the README's performance section).
    worker_concurrency: Annotated[int, Field(ge=1, le=2048)] = 512

    # --- webhooks: a delivery is retried with backoff (doubling, with jitter, up to the max)
    # until its deadline; a receiver gets this long to answer each attempt.
    webhook_deadline_seconds: PositiveSeconds = 86_400.0
    webhook_retry_base_seconds: PositiveSeconds = 5.0
    webhook_retry_max_seconds: PositiveSeconds = 3_600.0
    webhook_timeout_seconds: PositiveSeconds = 10.0
    # After a secret's rotation the old one still signs deliveries (beside the new) this long.
    webhook_rotation_overlap_seconds: PositiveSeconds = 86_400.0
    # Receivers on loopback, private or link-local addresses (a tenant's webhook must not reach
    # the deployment's own network: metadata services, Redis, the admin side of things). Unset:
    # allowed in development only.
    webhook_private_networks: bool | None = None

    # --- metrics: the API serves /metrics; each worker and beat listen on a port of their own
    # (0: none). Several workers on one host need one port each (twostep worker --metrics-port).
    metrics_host: str = "127.0.0.1"
    worker_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9101
    beat_metrics_port: Annotated[int, Field(ge=0, le=65535)] = 9102

    # --- logging
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["console", "json"] = "console"

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
        for key in keys:
            try:
                Fernet(key.get_secret_value().encode())
            except ValueError as exc:
                raise ValueError(
                    "each data key is a Fernet key: 32 url-safe base64 bytes "
                    "(make one with: twostep keys generate-data-key)"
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

    def keyring(self) -> Keyring:
        """The keys of personal data. Without configured keys, development uses public ones
        and production refuses to run."""
        data_keys = tuple(key.get_secret_value() for key in self.data_keys)
        lookup_key = self.lookup_key.get_secret_value() if self.lookup_key else None
        if not data_keys or lookup_key is None:
            if not self.development:
                raise MissingSecrets(
                    "TWOSTEP_DATA_KEYS and TWOSTEP_LOOKUP_KEY must be set in production "
                    "(or set TWOSTEP_ENVIRONMENT=development on a laptop)"
                )
            data_keys = data_keys or (DEVELOPMENT_DATA_KEY,)
            lookup_key = lookup_key or DEVELOPMENT_LOOKUP_KEY
        return keyring_for(data_keys, lookup_key)

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

    @property
    def broker_visibility_timeout_seconds(self) -> int:
        """Longer than any job can legitimately stay unacknowledged.

        Retries wait in the worker's memory unacknowledged until their countdown ends, and every
        retry happens before the deadline, so a visibility timeout past the longest deadline
        (plus one provider call) never hands a job to a second worker while the first still
        holds it. A dead worker's jobs come back sooner through the sweeper, not through this.
        """
        longest = max(self.send_deadline_seconds, self.check_deadline_seconds)
        one_call = self.twilio_connect_timeout_seconds + self.twilio_read_timeout_seconds
        return int(longest + one_call + self.claim_lease_seconds + 60)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
