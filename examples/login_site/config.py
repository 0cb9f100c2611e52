"""What the site reads from its environment."""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("login_site")


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class SiteConfig:
    twostep_url: str
    twostep_api_key: str
    database: Path
    session_secret: str
    # Secure cookies need HTTPS; a laptop serves plain HTTP on loopback.
    https_only: bool = False
    # In development only: where the sandbox shows the codes it "sent", linked from code pages.
    sandbox_url: str | None = None

    @classmethod
    def from_env(cls) -> SiteConfig:
        api_key = os.environ.get("TWOSTEP_API_KEY", "").strip()
        if not api_key:
            raise ConfigError(
                "TWOSTEP_API_KEY is not set: give the site a twostep key (`twostep keys create "
                "login-site`), or start everything with `twostep dev --example`"
            )
        secret = os.environ.get("LOGIN_SITE_SECRET_KEY", "").strip()
        if not secret:
            # Fine on a laptop; with more than one process, or across restarts, sessions need a
            # secret that every process shares.
            log.warning("LOGIN_SITE_SECRET_KEY is not set: sessions end when the site restarts")
            secret = secrets.token_urlsafe(32)
        return cls(
            twostep_url=os.environ.get("TWOSTEP_URL", "http://127.0.0.1:8000"),
            twostep_api_key=api_key,
            database=Path(os.environ.get("LOGIN_SITE_DATABASE", "login-site.db")),
            session_secret=secret,
            https_only=os.environ.get("LOGIN_SITE_HTTPS_ONLY", "").lower() in {"1", "true", "yes"},
            sandbox_url=os.environ.get("LOGIN_SITE_SANDBOX_URL") or None,
        )
