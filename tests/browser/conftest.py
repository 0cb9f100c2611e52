"""A headless Chromium drives the reference login site (examples/login_site), which talks to
twostep's real processes. The browser is Debian's (``/usr/bin/chromium``), never a downloaded one:
without it these tests skip, except in CI (``CI=true``), where they fail."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.conftest import System, running_system
from tests.support import ServiceProcess, base_env, free_port, wait_for_http

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# What makes the story quick: a short re-send cooldown and a short lockout after 3 wrong codes.
# The story sends a dozen codes to one number and from one address: the send limits go up.
# The site's webhook receiver is on loopback, which production refuses unless told.
RESEND_COOLDOWN_SECONDS = 3
FAST_SETTINGS = {
    "TWOSTEP_RESEND_COOLDOWN_SECONDS": str(RESEND_COOLDOWN_SECONDS),
    "TWOSTEP_LOCKOUT_FAILURES": "3",
    "TWOSTEP_LOCKOUT_WAIT_INCREMENT_SECONDS": "4",
    "TWOSTEP_LIMIT_PER_DESTINATION": "100 per 10 minutes",
    "TWOSTEP_LIMIT_PER_USER": "100 per hour",
    "TWOSTEP_LIMIT_PER_CLIENT_IP": "1000 per hour",
    "TWOSTEP_WEBHOOK_PRIVATE_NETWORKS": "true",  # the site's receiver is on loopback
}


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A browser per test: Playwright's sync API runs an event loop in this thread while it is
    open, and every asyncio test after it would find that loop running."""
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the browser tests")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


_SCREENSHOTS = pytest.StashKey[list[Path]]()


@pytest.fixture
def artifacts(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where a test's screenshots go: ``TWOSTEP_TEST_ARTIFACTS`` if set, else pytest's tmp;
    listed at the end of the run."""
    configured = os.environ.get("TWOSTEP_TEST_ARTIFACTS")
    root = Path(configured) if configured else tmp_path / "artifacts"
    directory = root / re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    directory.mkdir(parents=True, exist_ok=True)
    request.config.stash.setdefault(_SCREENSHOTS, []).append(directory)
    return directory


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    directories = config.stash.get(_SCREENSHOTS, [])
    if directories:
        terminalreporter.section("browser screenshots")
        for directory in directories:
            terminalreporter.write_line(str(directory))


@pytest.fixture(scope="module")
def fast_system(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """One system for the module's stories: each has a site, users and phones of its own."""
    directory = tmp_path_factory.mktemp("system")
    with running_system(database_url, redis_url, directory, settings=FAST_SETTINGS) as system:
        yield system


# Exactly what the site needs from twostep (docs/login-site.md), never admin.
SITE_SCOPES = "verify,users,users:manage"


@dataclass(frozen=True)
class LoginSite:
    url: str
    database: Path  # the site's SQLite file
    webhook_secret: str  # of twostep's endpoint for the site's receiver
    webhook_endpoint: str  # that endpoint's id


@contextlib.contextmanager
def running_login_site(system: System, directory: Path, **settings: str) -> Iterator[LoginSite]:
    """The login site as ``python -m examples.login_site``, a client of ``system``'s API with
    a key of its own, and a receiver of its webhooks; ``settings``: LOGIN_SITE_* variables."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    name = f"login-site-{uuid.uuid4().hex[:8]}"
    key = system.run("keys", "create", name, "--scopes", SITE_SCOPES).splitlines()[-1]
    admin = httpx.Client(
        base_url=system.api_url, headers={"Authorization": f"Bearer {system.api_key}"}
    )
    endpoint = admin.post("/v1/webhook-endpoints", json={"url": f"{url}/twostep/webhooks"})
    assert endpoint.status_code == 201, endpoint.text
    site = LoginSite(
        url, directory / "login-site.db", endpoint.json()["secret"], endpoint.json()["id"]
    )
    env = base_env(
        TWOSTEP_URL=system.api_url,
        TWOSTEP_API_KEY=key,
        LOGIN_SITE_DATABASE=str(site.database),
        LOGIN_SITE_WEBHOOK_SECRET=site.webhook_secret,
        **settings,
    )
    process = ServiceProcess(
        "login-site", ["--port", str(port)], env, directory, module="examples.login_site"
    )
    try:
        wait_for_http(f"{url}/login", process=process)
        yield site
    finally:
        process.stop()
        admin.delete(f"/v1/webhook-endpoints/{site.webhook_endpoint}")  # nobody listens now
        admin.close()


@pytest.fixture
def login_site(fast_system: System, tmp_path: Path) -> Iterator[LoginSite]:
    with running_login_site(fast_system, tmp_path) as site:
        yield site
