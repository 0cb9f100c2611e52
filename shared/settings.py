"""The one settings object. Every process reads its configuration here, once, from the environment.

Names are those of the architecture's §6: ``TWOSTEP_*`` for ours, ``TWILIO_*`` for Twilio's.
Durations are seconds (floats) so that ``TWOSTEP_SEND_DEADLINE_SECONDS=90`` reads naturally.
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PositiveSeconds = Annotated[float, Field(gt=0)]

# A service SID the sandbox accepts; only used when no real Twilio credentials are configured.
SANDBOX_SERVICE_SID = "VA" + "0" * 32
SANDBOX_ACCOUNT_SID = "AC" + "0" * 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TWOSTEP_",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
    )

    # --- storage and broker
    database_url: str = "sqlite:///twostep.db"
    redis_url: str = "redis://localhost:6379/0"

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

    # --- verification timings
    code_lifetime_seconds: PositiveSeconds = 600.0
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

    # --- sweeper (twostep beat)
    sweep_interval_seconds: PositiveSeconds = 5.0
    # A row still queued this long after its last enqueue is assumed to have lost its message.
    requeue_after_seconds: PositiveSeconds = 15.0

    # --- workers
    worker_concurrency: Annotated[int, Field(ge=1, le=512)] = 32

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

    @field_validator("twilio_base_url")
    @classmethod
    def _strip_trailing_slash(cls, url: str | None) -> str | None:
        return url.rstrip("/") if url else url

    @model_validator(mode="after")
    def _credentials_come_together(self) -> Settings:
        if (self.twilio_account_sid is None) != (self.twilio_auth_token is None):
            raise ValueError("set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or neither")
        return self

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
