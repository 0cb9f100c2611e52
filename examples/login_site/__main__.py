"""``python -m examples.login_site``: serve the reference login site."""

from __future__ import annotations

import argparse
import logging
import os

import uvicorn

from examples.login_site.app import create_app
from examples.login_site.config import ConfigError, SiteConfig

ENVIRONMENT = """environment:
  TWOSTEP_URL             twostep's API (default http://127.0.0.1:8000)
  TWOSTEP_API_KEY         a key with the verify, users and admin scopes (required)
  LOGIN_SITE_DATABASE     the site's SQLite file (default login-site.db)
  LOGIN_SITE_SECRET_KEY   signs session cookies (default: a random one per start)
  LOGIN_SITE_HTTPS_ONLY   true: cookies only over HTTPS
  LOGIN_SITE_SANDBOX_URL  development: link the sandbox's inbox from the code pages
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
