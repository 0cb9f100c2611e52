"""What each process checks before it starts: a misconfiguration that would leak credentials,
personal data or money is refused at start-up, with every problem listed, instead of being found
out in production.

Production (the default) refuses what only fits a laptop: development or placeholder secrets,
no country allow-list, a Twilio base URL off loopback, Redis over the network without a
password. In every environment a worker refuses real Twilio credentials together with a base
URL: the sandbox (or whatever listens there) must never receive them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import make_url

from shared.kit.crypto import DEVELOPMENT_DATA_KEY, DEVELOPMENT_LOOKUP_KEY
from shared.kit.network import is_loopback_url
from shared.kit.settings import SANDBOX_ACCOUNT_SID, Settings

Process = Literal["api", "worker", "beat", "flower", "migrate", "keys"]

# Values that documentation, compose files and tutorials use as examples.
_PLACEHOLDERS = frozenset(
    {"", "changeme", "change-me", "change_me", "password", "secret", "twostep", "postgres",
     "redis", "admin", "test", "example", "sandbox", "xxx", "todo"}
)  # fmt: skip
_MIN_SECRET_LENGTH = 32
_MIN_FLOWER_PASSWORD = 12


class Misconfigured(Exception):
    """The process must not start with this configuration; ``problems`` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("refusing to start:\n" + "\n".join(f"  - {p}" for p in problems))
        self.problems = problems


def ensure_startable(settings: Settings, process: Process) -> None:
    problems = startup_problems(settings, process)
    if problems:
        raise Misconfigured(problems)


def startup_problems(settings: Settings, process: Process) -> list[str]:
    problems: list[str] = []
    if process == "worker":
        problems += _twilio_problems(settings)
    if settings.development:
        return problems
    if process in ("api", "worker", "beat", "migrate"):
        problems += _secret_problems(settings)
        problems += _storage_problems(settings)
    if process == "api" and settings.allowed_countries is None:
        problems.append(
            "TWOSTEP_ALLOWED_COUNTRIES is not set: every country would be open to SMS pumping; "
            "list the countries your users are in (e.g. US,CA,GB)"
        )
    return problems


def flower_auth_problems(settings: Settings, basic_auth: str) -> list[str]:
    """Flower shows every task and worker: production wants a real password for it."""
    _user, _, password = basic_auth.partition(":")
    if settings.development or (
        len(password) >= _MIN_FLOWER_PASSWORD and password.lower() not in _PLACEHOLDERS
    ):
        return []
    return [
        f"TWOSTEP_FLOWER_BASIC_AUTH needs a password of {_MIN_FLOWER_PASSWORD} characters or "
        "more that is not a placeholder"
    ]


def has_real_twilio_credentials(settings: Settings) -> bool:
    sid = settings.twilio_account_sid
    return sid is not None and sid != SANDBOX_ACCOUNT_SID


def _twilio_problems(settings: Settings) -> list[str]:
    base_url = settings.twilio_base_url
    if base_url is None:
        if settings.twilio_account_sid is None or settings.twilio_verify_service_sid is None:
            return [
                "no Twilio account: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
                "TWILIO_VERIFY_SERVICE_SID, or TWOSTEP_TWILIO_BASE_URL for the sandbox"
            ]
        token = settings.twilio_auth_token
        if token is not None and token.get_secret_value().lower() in _PLACEHOLDERS:
            return ["TWILIO_AUTH_TOKEN is a placeholder"]
        return []
    problems = []
    if has_real_twilio_credentials(settings):
        problems.append(
            "TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN and TWOSTEP_TWILIO_BASE_URL are both set: "
            "real credentials would be sent to that URL; unset one of them"
        )
    if not settings.development and not is_loopback_url(base_url):
        problems.append(
            f"TWOSTEP_TWILIO_BASE_URL points off this machine ({urlsplit(base_url).hostname}); "
            "a sandbox elsewhere is for development only (TWOSTEP_ENVIRONMENT=development)"
        )
    return problems


def _secret_problems(settings: Settings) -> list[str]:
    problems = []
    data_keys = [key.get_secret_value() for key in settings.data_keys]
    if not data_keys:
        problems.append("TWOSTEP_DATA_KEYS is not set (make one: twostep keys generate-data-key)")
    elif DEVELOPMENT_DATA_KEY in data_keys:
        problems.append("TWOSTEP_DATA_KEYS holds the public development key")
    lookup = settings.lookup_key.get_secret_value() if settings.lookup_key else ""
    if not lookup:
        problems.append("TWOSTEP_LOOKUP_KEY is not set (32 random characters or more)")
    elif lookup == DEVELOPMENT_LOOKUP_KEY or lookup.lower() in _PLACEHOLDERS:
        problems.append("TWOSTEP_LOOKUP_KEY is a placeholder")
    elif len(lookup) < _MIN_SECRET_LENGTH:
        problems.append(f"TWOSTEP_LOOKUP_KEY is shorter than {_MIN_SECRET_LENGTH} characters")
    return problems


def _storage_problems(settings: Settings) -> list[str]:
    # Unset, each would be a default meant for a laptop (./twostep.db, Redis db 0 on localhost):
    # the process would start, say it is ready, and fail every request.
    problems = [
        f"{variable} is not set: production names its {what} explicitly"
        for field, variable, what in (
            ("database_url", "TWOSTEP_DATABASE_URL", "database"),
            ("redis_url", "TWOSTEP_REDIS_URL", "Redis"),
        )
        if field not in settings.model_fields_set
    ]
    database = make_url(settings.database_url)
    if database.get_backend_name() != "sqlite":
        local = database.host in (None, "") or _is_loopback_host(database.host)
        if _unsafe_password(database.password, local=local):
            problems.append(
                "the database is reached over the network without a password, or with a "
                "placeholder one, in TWOSTEP_DATABASE_URL"
            )
    for url in _redis_urls(settings.redis_url):
        if _unsafe_password(urlsplit(url).password, local=is_loopback_url(url)):
            problems.append(
                "Redis is reached over the network without a password, or with a placeholder "
                "one; set one (requirepass or an ACL user) in TWOSTEP_REDIS_URL"
            )
    return problems


def _unsafe_password(secret: str | None, *, local: bool) -> bool:
    """No password is fine on this machine (a socket, trust on loopback); a placeholder never."""
    if secret is None or secret == "":
        return not local
    return secret.lower() in _PLACEHOLDERS


def _is_loopback_host(host: str) -> bool:
    return host.startswith("/") or is_loopback_url(f"//{host}")


def _redis_urls(url: str) -> Iterable[str]:
    parts = [part for part in url.split(";") if part.strip()]
    # Through Sentinel the primary's password is read from the first sentinel's URL only.
    return parts[:1] if url.startswith("sentinel://") else parts
