"""What the site reads from its environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class SiteConfig:
    twostep_url: str
    twostep_api_key: str
    database: Path
    # Secure cookies need HTTPS; a laptop serves plain HTTP on loopback.
    https_only: bool = False
    # In development only: where the sandbox shows the codes it "sent", linked from code pages.
    sandbox_url: str | None = None
    # A session ends after this long without a request, and after the absolute limit whatever
    # the user does: a session left open on a shared computer does not last the day.
    idle_seconds: int = 30 * 60
    absolute_seconds: int = 8 * 3600
    # How recent a second step (or, without two-step, the password) must be before a change
    # that would let a thief keep the account: a phone, two-step off, recovery codes, password.
    fresh_seconds: int = 5 * 60
    # twostep's webhook signing secrets, newest first (two during a rotation); none: no notices.
    webhook_secrets: tuple[str, ...] = ()
    # Wrong passwords, in `limits`' notation, counted in this process's memory.
    wrong_passwords_per_email: str = "5 per 15 minutes"
    wrong_passwords_per_ip: str = "50 per hour"
    signups_per_ip: str = "10 per hour"

    @classmethod
    def from_env(cls) -> SiteConfig:
        api_key = os.environ.get("TWOSTEP_API_KEY", "").strip()
        if not api_key:
            raise ConfigError(
                "TWOSTEP_API_KEY is not set: give the site a twostep key (`twostep keys create "
                "login-site --scopes verify,users,users:manage`), or start everything with "
                "`twostep dev --example`"
            )
        secrets = os.environ.get("LOGIN_SITE_WEBHOOK_SECRET", "")
        return cls(
            twostep_url=os.environ.get("TWOSTEP_URL", "http://127.0.0.1:8000"),
            twostep_api_key=api_key,
            database=Path(os.environ.get("LOGIN_SITE_DATABASE", "login-site.db")),
            https_only=os.environ.get("LOGIN_SITE_HTTPS_ONLY", "").lower() in {"1", "true", "yes"},
            sandbox_url=os.environ.get("LOGIN_SITE_SANDBOX_URL") or None,
            idle_seconds=_seconds("LOGIN_SITE_IDLE_SECONDS", cls.idle_seconds),
            absolute_seconds=_seconds("LOGIN_SITE_SESSION_SECONDS", cls.absolute_seconds),
            fresh_seconds=_seconds("LOGIN_SITE_FRESH_SECONDS", cls.fresh_seconds),
            webhook_secrets=tuple(s.strip() for s in secrets.split(",") if s.strip()),
        )


def _seconds(name: str, default: int) -> int:
    typed = os.environ.get(name, "").strip()
    if not typed:
        return default
    if not typed.isdigit() or int(typed) < 1:
        raise ConfigError(f"{name} must be a whole number of seconds, at least 1: {typed!r}")
    return int(typed)
