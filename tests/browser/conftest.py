"""A headless Chromium drives the reference login site (examples/login_site), which talks to
twostep's real processes. The browser is Debian's (``/usr/bin/chromium``), never a downloaded one:
without it these tests skip, except in CI (``CI=true``), where they fail."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

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
RESEND_COOLDOWN_SECONDS = 3
FAST_SETTINGS = {
    "TWOSTEP_RESEND_COOLDOWN_SECONDS": str(RESEND_COOLDOWN_SECONDS),
    "TWOSTEP_LOCKOUT_FAILURES": "3",
    "TWOSTEP_LOCKOUT_WAIT_INCREMENT_SECONDS": "4",
    "TWOSTEP_LIMIT_PER_DESTINATION": "100 per 10 minutes",
    "TWOSTEP_LIMIT_PER_USER": "100 per hour",
    "TWOSTEP_LIMIT_PER_CLIENT_IP": "1000 per hour",
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


@pytest.fixture
def fast_system(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[System]:
    with running_system(database_url, redis_url, tmp_path, settings=FAST_SETTINGS) as system:
        yield system


@contextlib.contextmanager
def running_login_site(system: System, directory: Path) -> Iterator[str]:
    """The login site as ``python -m examples.login_site``, a client of ``system``'s API."""
    port = free_port()
    env = base_env(
        TWOSTEP_URL=system.api_url,
        TWOSTEP_API_KEY=system.api_key,
        LOGIN_SITE_DATABASE=str(directory / "login-site.db"),
        LOGIN_SITE_SECRET_KEY=secrets.token_urlsafe(32),
    )
    site = ServiceProcess(
        "login-site", ["--port", str(port)], env, directory, module="examples.login_site"
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/login", process=site)
        yield url
    finally:
        site.stop()


@pytest.fixture
def login_site(fast_system: System, tmp_path: Path) -> Iterator[str]:
    with running_login_site(fast_system, tmp_path) as url:
        yield url
