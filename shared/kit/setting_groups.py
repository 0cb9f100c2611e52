"""The settings' fields, by group; ``shared.kit.settings.Settings`` is all of them together.

Each field's ``description`` and each group's docstring make the configuration reference,
``docs/configuration.md`` (``python -m twostep.docs_config``; a field without a description fails
the docs' tests). Defaults and constraints are the behaviour; descriptions only tell it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from limits import parse as parse_rate_limit
from pydantic import AfterValidator, AliasChoices, BaseModel, Field, SecretStr
from pydantic_settings import NoDecode

PositiveSeconds = Annotated[float, Field(gt=0)]


def _valid_rate_limit(value: str) -> str:
    try:
        parse_rate_limit(value)
    except ValueError as exc:
        raise ValueError(f"not a rate limit like '5 per 10 minutes': {value!r}") from exc
    return value


RateLimit = Annotated[str, AfterValidator(_valid_rate_limit)]
Environment = Literal["production", "development"]


class SettingGroup(BaseModel):
    """A group of settings: a section of the configuration reference."""


class Deployment(SettingGroup):
    """The kind of deployment.

    Production refuses what is only fit for a laptop: development keys, no country allow-list,
    a Twilio base URL off loopback, no explicit `TWOSTEP_DATABASE_URL` or `TWOSTEP_REDIS_URL`
    (their defaults are a laptop's: `./twostep.db`, Redis db 0 on localhost)
    (`shared/kit/startup.py`). A setting that cannot be read stops every command with one line
    per variable, naming it and what is wrong, never echoing its value. `/readyz` says not
    ready while the database's schema is behind the code; `twostep migrate` says what it
    migrated, and one line when the database is unreachable.
    """

    environment: Environment = Field(
        "production",
        description="`production` refuses to start with a laptop's configuration (see Security); "
        "`development` allows the public development keys, no allow-list and a sandbox anywhere "
        "(`twostep dev` sets it)",
    )


class Storage(SettingGroup):
    """Storage and broker.

    SQL is the source of truth; Redis carries jobs and may lose them.
    """

    database_url: str = Field(
        "sqlite:///twostep.db",
        description="SQLAlchemy URL; `postgresql://…` runs on asyncpg (migrations: psycopg 3)",
    )
    redis_url: str = Field(
        "redis://localhost:6379/0",
        description="broker, typed codes in flight, limits, lockouts, the provider gate, "
        "decisions' "
        "notifications; `sentinel://h1:26379;sentinel://h2:26379;sentinel://h3:26379/0` for a "
        "primary watched by Redis Sentinel (the primary's password in the first part: "
        "`sentinel://:pw@h1:26379;…`; the sentinels themselves without one)",
    )
    redis_sentinel_master: str = Field(
        "mymaster",
        description="with a `sentinel://` URL: the name the sentinels know the primary by",
    )
    redis_key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{0,64}$")] = Field(
        "",
        description="put before every key twostep and Celery write, to share one Redis between "
        "deployments (up to 64 letters, digits, `_.:-`)",
    )
    database_pool_size: Annotated[int, Field(ge=1, le=200)] = Field(
        10,
        description="most database connections one process opens (as needed, then kept: none is "
        "opened and closed per burst); a request or job holds one only while it talks to the "
        "database, never across Redis or a provider call",
    )


class Twilio(SettingGroup):
    """Twilio.

    Twilio Verify, or the sandbox when `TWOSTEP_TWILIO_BASE_URL` is set.
    """

    twilio_account_sid: str | None = Field(
        None,
        validation_alias=AliasChoices("TWILIO_ACCOUNT_SID"),
        description="Twilio account (with `TWILIO_AUTH_TOKEN`: both or neither)",
    )
    twilio_auth_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("TWILIO_AUTH_TOKEN"),
        description="Twilio auth token; never logged",
    )
    twilio_verify_service_sid: str | None = Field(
        None,
        validation_alias=AliasChoices("TWILIO_VERIFY_SERVICE_SID"),
        description="the `default` tenant's Verify service (`VA…`); every other tenant sends "
        "through its own (`twostep tenants create`). With the sandbox: its built-in `VA000…000`",
    )
    twilio_base_url: str | None = Field(
        None,
        description="send every Twilio call here instead of to real Twilio: the sandbox's URL",
    )
    twilio_connect_timeout_seconds: PositiveSeconds = Field(
        3.05, description="connect timeout of each Twilio call"
    )
    twilio_read_timeout_seconds: PositiveSeconds = Field(
        10.0, description="read timeout of each Twilio call (Twilio publishes no latency SLA)"
    )


class PersonalData(SettingGroup):
    """Personal data.

    Encrypted at rest (`shared/kit/crypto.py`), found again by keyed hashes, kept for a while.
    """

    data_keys: Annotated[tuple[SecretStr, ...], NoDecode] = Field(
        (),
        description="Fernet keys, comma-separated, newest first: the first encrypts phone "
        "numbers, client IPs and typed codes, every one decrypts (`twostep keys "
        "generate-data-key`); required in production",
    )
    lookup_key: SecretStr | None = Field(
        None,
        description="secret of the keyed hashes (HMAC-SHA256) that SQL look-ups and Redis key "
        "names use instead of phone numbers, user ids and IPs; not a data key: rotating data "
        "keys leaves it as it is; 32 characters or more; required in production",
    )
    retention_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        90, description="beat deletes verifications, checks and events older than this"
    )


class Timings(SettingGroup):
    """A verification's timings."""

    code_lifetime_seconds: Annotated[float, Field(gt=0, le=600)] = Field(
        600.0,
        description="how long a sent code is good for (Twilio's default, and its most: larger "
        "is refused, as the code would outlive the verification it checks against)",
    )
    send_deadline_seconds: PositiveSeconds = Field(
        120.0, description="give up sending after this; a later code is useless"
    )
    check_deadline_seconds: PositiveSeconds = Field(30.0, description="give up checking after this")
    max_check_attempts: Annotated[int, Field(ge=1, le=5)] = Field(
        5, description="checks per verification (Twilio allows 5)"
    )
    claim_lease_seconds: PositiveSeconds = Field(
        30.0, description="a worker's claim on a row; after it another worker may take over"
    )
    retry_backoff_base_seconds: PositiveSeconds = Field(
        1.0, description="first retry wait of a send or a check (doubling, with jitter)"
    )
    retry_backoff_max_seconds: PositiveSeconds = Field(
        20.0, description="longest retry wait of a send or a check"
    )


class Api(SettingGroup):
    """The API."""

    max_body_bytes: Annotated[int, Field(ge=1024, le=1_048_576)] = Field(
        16_384,
        description="largest request body the API reads; bigger ones get `413` before parsing "
        "or authentication",
    )
    public_docs: bool | None = Field(
        None,
        description="serve `/docs` and `/openapi.json` without a key; unset: in development only",
    )
    idempotency_ttl_seconds: PositiveSeconds = Field(
        86_400.0, description="how long the first answer to an `Idempotency-Key` is replayed"
    )
    api_key_cache_seconds: Annotated[float, Field(ge=0, le=300)] = Field(
        5.0,
        description="each API process remembers an API key's look-up this long: a revoked key "
        "stops working within it (`0`: look up on every request)",
    )
    max_waiters: Annotated[int, Field(ge=0)] = Field(
        5000,
        description="long-polls (`?wait=`) one API process holds at once; past it, requests "
        "answer at once with the current state",
    )


class TwoStep(SettingGroup):
    """Two-step authentication.

    Number checks go through Twilio Lookup v2 (NIST SP 800-63B 5.1.3.3), each a provider call
    the worker makes before a send; a tenant may choose otherwise (`twostep tenants create
    --[no-]line-type-check --[no-]sim-swap-check`).
    """

    one_user_per_phone: bool = Field(
        True,
        description="a phone verified for another user of the tenant is not enrolled (the "
        "enrolment fails at approval, generically): one phone, one account",
    )
    line_type_check: bool | None = Field(
        None,
        description="at enrolment, look up the number's line type and refuse types not allowed "
        "(`line_type_not_allowed`); unset: on in production, off in development",
    )
    allowed_line_types: Annotated[frozenset[str], NoDecode] = Field(
        frozenset({"mobile"}),
        description="comma-separated Twilio line types that may enrol (`mobile`, `landline`, "
        "`fixedVoip`, `nonFixedVoip`, `personal`, `tollFree`, `premium`, `sharedCost`, `uan`, "
        "`voicemail`, `pager`, `unknown`)",
    )
    line_type_cache_seconds: PositiveSeconds = Field(
        30 * 86_400.0,
        description="a number's line type is looked up once per this long (30 days)",
    )
    sim_swap_check: bool | None = Field(
        None,
        description="at each SMS or voice login, ask Twilio Lookup whether the number's SIM "
        "changed within the window; then the login's code is not sent (`sim_swap_detected`) and "
        "recovery codes stay open; unset: on in production, off in development",
    )
    sim_swap_window_seconds: PositiveSeconds = Field(
        3 * 86_400.0,
        description="a SIM swap this recent (3 days) refuses codes by SMS or call",
    )


class AbuseProtection(SettingGroup):
    """Abuse protection.

    Every limit is counted in Redis, shared by every process. Send limits use the `limits`
    library's syntax, `N per [count] second|minute|hour|day`; daily caps are counted over a day
    that starts with its first send.
    """

    limit_per_destination: RateLimit = Field(
        "5 per 10 minutes",
        description="sends to one phone number or email address (Twilio's own limit)",
    )
    limit_per_user: RateLimit = Field("10 per hour", description="sends for one `user_id`")
    limit_per_client_ip: RateLimit = Field(
        "30 per hour", description="sends for one `client_ip` (IPv6: per /64)"
    )
    limit_per_api_key: RateLimit = Field("300 per minute", description="sends by one API key")
    limit_per_country: RateLimit = Field(
        "1000 per day",
        description="sends to one destination country, per tenant (SMS, voice and WhatsApp)",
    )
    limit_per_email_domain: RateLimit = Field(
        "1000 per hour",
        description="email codes to one domain, per tenant: an email address has no country "
        "and costs no toll, but a flood of codes to one company's inboxes gets the sender "
        "blocked there; raise it for a domain most users share (a large webmail's)",
    )
    limit_per_api_key_daily: RateLimit = Field(
        "5000 per day", description="sends by one API key in a day"
    )
    limit_global_daily: RateLimit = Field(
        "20000 per day",
        description="sends by SMS, voice or WhatsApp of the whole deployment, every tenant's "
        "(the Twilio bill's cap)",
    )
    cap_warning_ratio: Annotated[float, Field(gt=0, le=1)] = Field(
        0.8,
        description="share of a daily cap at which a warning is logged (`limits.cap_near`) and "
        "`twostep_daily_cap_near_total` counts",
    )
    country_daily_caps: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description="JSON, per-country daily caps replacing `TWOSTEP_LIMIT_PER_COUNTRY`, e.g. "
        '`{"US": 100000}`',
    )
    resend_cooldown_seconds: PositiveSeconds = Field(
        30.0, description="least time between two sends of one verification"
    )
    allowed_countries: Annotated[frozenset[str] | None, NoDecode] = Field(
        None,
        description="comma-separated ISO 3166 codes (`US,CA,GB`); others get `403 "
        "country_not_allowed`; unset: every country, and production refuses to start",
    )
    lockout_failures: Annotated[int, Field(ge=1)] = Field(
        5,
        description="wrong codes per guesser before each lockout step (a user; for a "
        "verification without a user, its number and client address)",
    )
    lockout_wait_increment_seconds: PositiveSeconds = Field(
        60.0, description="lockout length per step (grows: 60 s, 120 s, …)"
    )
    lockout_max_wait_seconds: PositiveSeconds = Field(900.0, description="longest lockout")
    lockout_failure_reset_seconds: PositiveSeconds = Field(
        43_200.0,
        description="the steps' wrong codes are forgotten after this long without one (or at a "
        "right code)",
    )
    lockout_hard_failures: Annotated[int, Field(ge=1)] = Field(
        100,
        description="after this many consecutive wrong codes — forgotten only at a right code, "
        "never by time (NIST SP 800-63B 5.2.2) — locked until an `admin` key releases it",
    )
    limit_recovery_code_sets: RateLimit = Field(
        "5 per day", description="new sets of recovery codes per user"
    )
    provider_rate: Annotated[float, Field(gt=0)] = Field(
        30.0, description="Twilio requests per second for the whole fleet of workers"
    )
    provider_burst: Annotated[int, Field(ge=1)] = Field(
        10, description="requests allowed at once above that rate"
    )
    provider_max_in_flight: Annotated[int, Field(ge=1)] = Field(
        100,
        description="Twilio requests in flight at once for the whole fleet (Twilio answers "
        "20429 past an account's concurrency)",
    )


class Sweeper(SettingGroup):
    """The sweeper (`twostep beat`)."""

    sweep_interval_seconds: PositiveSeconds = Field(
        5.0, description="how often beat runs the sweeper"
    )
    requeue_after_seconds: PositiveSeconds = Field(
        15.0,
        description="a row still queued this long after its last enqueue is assumed to have "
        "lost its job",
    )


class Workers(SettingGroup):
    """The workers."""

    task_events: bool = Field(
        False,
        description='Celery task events at all times (and "sent" events from the API); off, '
        "Flower still sees every task, as it turns a worker's events on while it runs",
    )
    worker_concurrency: Annotated[int, Field(ge=1, le=2048)] = Field(
        512,
        description="jobs one worker process runs at once; a job waiting on Twilio holds no "
        "database connection and no CPU (see Performance)",
    )


class Webhooks(SettingGroup):
    """Webhooks.

    A delivery is retried with backoff (doubling, with jitter, up to the max) until its
    deadline; a receiver gets the timeout to answer each attempt.
    """

    webhook_deadline_seconds: PositiveSeconds = Field(
        86_400.0, description="how long a webhook delivery is retried before it is `failed`"
    )
    webhook_retry_base_seconds: PositiveSeconds = Field(
        5.0, description="first wait before a delivery is tried again (doubling, with jitter)"
    )
    webhook_retry_max_seconds: PositiveSeconds = Field(
        3_600.0, description="longest wait between two tries of a delivery"
    )
    webhook_timeout_seconds: PositiveSeconds = Field(
        10.0, description="how long a receiver has to answer one try"
    )
    webhook_rotation_overlap_seconds: PositiveSeconds = Field(
        86_400.0, description="after a secret's rotation, how long the old one signs too"
    )
    webhook_private_networks: bool | None = Field(
        None,
        description="let webhook URLs reach loopback, private and link-local addresses (a "
        "tenant's webhook must not reach the deployment's own network); off, such a URL is "
        "refused at registration and a name that resolves to one is not connected to; unset: "
        "allowed in development only",
    )


class Metrics(SettingGroup):
    """Metrics.

    The API serves `/metrics`; each worker and beat listen on a port of their own.
    """

    metrics_host: str = Field(
        "127.0.0.1", description="address the workers' and beat's metrics ports listen on"
    )
    worker_metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        9101,
        description="a worker's Prometheus port (`0`: none); `twostep worker --metrics-port` "
        "per worker on a shared host",
    )
    beat_metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        9102, description="beat's Prometheus port (`0`: none)"
    )


class Logging(SettingGroup):
    """Logging."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="`DEBUG`, `INFO`, `WARNING` or `ERROR`"
    )
    log_format: Literal["console", "json"] = Field(
        "console", description="`console` or `json` (for machines)"
    )
