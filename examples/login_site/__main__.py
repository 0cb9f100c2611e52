"""``python -m examples.login_site``: serve the reference login site."""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from examples.login_site.app import create_app
from examples.login_site.config import ConfigError, SiteConfig

ENVIRONMENT = """environment:
  TWOSTEP_URL                 twostep's API (default http://127.0.0.1:8000)
  TWOSTEP_API_KEY             a key with the scopes verify,users,users:manage, never admin
                              (required)
  LOGIN_SITE_DATABASE         the site's SQLite file: users, sessions, notices
                              (default login-site.db)
  LOGIN_SITE_HTTPS_ONLY       true: the session cookie is __Host-login_site_session, Secure;
                              otherwise (plain http on loopback) login_site_session
  LOGIN_SITE_IDLE_SECONDS     a session ends after this long without a request (1800)
  LOGIN_SITE_SESSION_SECONDS  and after this long in any case (28800)
  LOGIN_SITE_FRESH_SECONDS    how recent a second step (or, without two-step, the password)
                              must be before a new phone, two-step off, new recovery codes or
                              a new password; older: asked for again (300)
  LOGIN_SITE_WEBHOOK_SECRET   the secret of twostep's webhook endpoint for POST
                              /twostep/webhooks (security notices); two, comma-separated,
                              during a rotation; unset: the receiver is off
  LOGIN_SITE_SANDBOX_URL      development: link the sandbox's inbox from the code pages
  LOGIN_SITE_HOST, LOGIN_SITE_PORT  defaults for --host and --port"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.login_site",
        description="The reference login site: password accounts and two-step verification "
        "through twostep.",
        epilog=ENVIRONMENT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=os.environ.get("LOGIN_SITE_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOGIN_SITE_PORT", "8080")))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = SiteConfig.from_env()
    except ConfigError as error:
        parser.exit(2, f"login site: {error}\n")
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_config=None)


if __name__ == "__main__":
    main()
