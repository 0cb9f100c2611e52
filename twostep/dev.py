"""``twostep dev``: the whole system on a laptop, with nothing but Python installed.

SQLite in ``.twostep/``, a Redis (``TWOSTEP_REDIS_URL``, else a ``redis-server`` on PATH on a free
port, else an embedded one), the sandbox standing in for Twilio, then the API, a worker and beat.
With ``--example``, also the reference login site (``examples/login_site``, run from the
repository: it is not installed with twostep). Children run in their own process groups so that
Ctrl-C reaches only this launcher, which then stops them in the reverse of the order they
started in: the login site and Flower, beat, the worker, the API, the sandbox, Redis.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import httpx

from shared.errors import Unauthorized
from shared.kit import crypto
from shared.kit.crypto import keyring_of
from shared.kit.db.migrate import upgrade
from shared.kit.settings import Settings
from shared.tenants.domain import ALL_SCOPES, DEFAULT_TENANT, Scope
from shared.tenants.keys import authenticate, create_api_key
from shared.unit_of_work import UnitOfWork
from twostep.children import redis_server_argv
from twostep.common import run_in_unit_of_work
from twostep.launcher import (
    Launcher,
    StartFailed,
    free_port,
    free_port_near,
    say,
    wait_http,
    wait_tcp,
    wait_worker,
)
from twostep.tenants_cli import set_passkeys

# The repository this twostep runs from, when it is installed editable (pip install -e .).
_REPOSITORY = Path(__file__).resolve().parent.parent
_EXAMPLE_INSTALL = ".venv/bin/pip install -c constraints.txt -e '.[example]' -e ./clients/python"


@dataclass(frozen=True)
class DevOptions:
    api_port: int = 8000
    sandbox_port: int = 8765
    data_dir: str = ".twostep"
    flower: bool = False
    example: bool = False
    example_port: int = 8080


def run_dev(options: DevOptions) -> int:
    if options.example:
        problem = example_site_problem()
        if problem:
            say(problem)
            return 1
    data_dir = Path(options.data_dir).resolve()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = os.environ.copy()
    # A laptop: the public development keys, no country allow-list, the sandbox. Production
    # refuses all of that (shared/kit/startup.py).
    env.setdefault("TWOSTEP_ENVIRONMENT", "development")
    env.setdefault("TWOSTEP_DATABASE_URL", f"sqlite:///{data_dir / 'twostep.db'}")
    env.setdefault("PYTHONUNBUFFERED", "1")
    launcher = Launcher(env)

    interrupted = False

    def _interrupt(_signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True

    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        banner = _start_all(launcher, options, data_dir, lambda: interrupted)
        if not interrupted:
            banner.show()
        while not interrupted:
            exited = launcher.first_exited()
            if exited is not None:
                say(
                    f"{exited.name} exited with code {exited.process.returncode}; stopping the rest"
                )
                return 1
            time.sleep(0.5)
        return 0
    except StartFailed as exc:
        say(f"could not start: {exc}")
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        launcher.stop_all()
        say("stopped")


def _start_all(
    launcher: Launcher, options: DevOptions, data_dir: Path, interrupted: Callable[[], bool]
) -> _Banner:
    """Every child, each answering before the banner is shown."""
    env = launcher.env
    redis_note = _start_redis(launcher, data_dir)
    sandbox_url = None
    if not (env.get("TWILIO_ACCOUNT_SID") and env.get("TWILIO_AUTH_TOKEN")):
        sandbox_port = free_port_near(options.sandbox_port)
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        env["TWOSTEP_TWILIO_BASE_URL"] = sandbox_url
        # The services it makes (one per tenant) must outlive it: the database names them.
        state = str(data_dir / "sandbox-services.json")
        launcher.start(
            "sandbox", "-m", "twostep.cli", "sandbox", "--port", str(sandbox_port),
            "--state-file", state,
        )  # fmt: skip

    say(f"migrating {masked_url(env['TWOSTEP_DATABASE_URL'])}")
    settings = _settings_of(env)
    # The keys its children will use: the environment's, else the development ones.
    crypto.install(keyring_of(settings))
    upgrade(env["TWOSTEP_DATABASE_URL"])
    api_key = _saved_or_new_key(settings, data_dir / "dev-api-key", "dev", ALL_SCOPES)

    api_port = free_port_near(options.api_port)
    api_url = f"http://127.0.0.1:{api_port}"
    launcher.start("api", "-m", "twostep.cli", "api", "--port", str(api_port))
    metrics_ports = free_port_near(9101), free_port_near(9102)
    launcher.start("worker", "-m", "twostep.cli", "worker", "--metrics-port", str(metrics_ports[0]))
    launcher.start("beat", "-m", "twostep.cli", "beat", "--metrics-port", str(metrics_ports[1]))
    flower_url = None
    if options.flower:
        flower_port = free_port_near(5555)
        flower_url = f"http://127.0.0.1:{flower_port}"
        launcher.start("flower", "-m", "twostep.cli", "flower", "--port", str(flower_port))
    if sandbox_url:
        wait_http(f"{sandbox_url}/healthz", "sandbox", launcher, interrupted)
    wait_http(f"{api_url}/readyz", "api", launcher, interrupted)
    wait_worker(env["TWOSTEP_REDIS_URL"], launcher, interrupted)
    site_url = None
    if options.example:  # once the API answers: the site's webhook endpoint is made through it
        site = _ExampleSite(options.example_port, data_dir, api_url, api_key, sandbox_url)
        site_url = _start_example_site(launcher, site, interrupted)
    database_url = env["TWOSTEP_DATABASE_URL"]
    return _Banner(
        api_url, site_url, sandbox_url, flower_url, metrics_ports, redis_note, database_url, api_key
    )


def _start_redis(launcher: Launcher, data_dir: Path) -> str:
    env = launcher.env
    if env.get("TWOSTEP_REDIS_URL"):
        return f"Redis from TWOSTEP_REDIS_URL ({masked_url(env['TWOSTEP_REDIS_URL'])})"
    port = free_port()
    env["TWOSTEP_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    server = shutil.which("redis-server")
    if server:
        launcher.start_command(
            "redis", redis_server_argv(port, "--dir", str(data_dir), program=server)
        )
        note = f"redis-server ({server}) on port {port}"
    else:
        launcher.start("redis", "-m", "twostep.embedded_redis", "--port", str(port))
        note = (
            f"embedded Redis (fakeredis) on port {port}: no redis-server on PATH. It works but "
            "is slow (~10 jobs/s); install Redis for anything beyond a try-out"
        )
    wait_tcp(port, "redis", launcher)
    return note


def example_site_problem() -> str | None:
    """Why the reference login site cannot run here, if it cannot."""
    site = _REPOSITORY / "examples" / "login_site"
    if not (site / "__main__.py").is_file():
        return (
            f"--example: the reference login site is not at {site}. It comes with twostep's "
            "repository, not with the package: run twostep dev --example from a clone, "
            "installed with pip install -e"
        )
    missing = [
        name for name in ("jinja2", "twostep_client") if importlib.util.find_spec(name) is None
    ]
    if missing:
        return (
            f"--example: the login site needs {', '.join(missing)}, not installed in this "
            f"Python; install them with (in {_REPOSITORY}): {_EXAMPLE_INSTALL}"
        )
    return None


@dataclass(frozen=True)
class _ExampleSite:
    """What the reference login site is started with."""

    port: int
    data_dir: Path
    api_url: str
    api_key: str  # the development key (every scope): registers the site's webhook endpoint
    sandbox_url: str | None


def _start_example_site(
    launcher: Launcher, site: _ExampleSite, interrupted: Callable[[], bool]
) -> str | None:
    """The login site, a client of the API with a key of its own (the scopes it needs and no
    more), told of account changes by a webhook endpoint; its data beside twostep's. Its URL
    once it answers (None if interrupted first)."""
    if interrupted():
        return None
    site_port = free_port_near(site.port)
    site_url = f"http://127.0.0.1:{site_port}"
    key_file = site.data_dir / "login-site-api-key"
    env = {
        **launcher.env,
        "TWOSTEP_URL": site.api_url,
        "TWOSTEP_API_KEY": _saved_or_new_key(
            _settings_of(launcher.env), key_file, "login-site", _SITE_SCOPES
        ),
        "LOGIN_SITE_DATABASE": str(site.data_dir / "login-site.db"),
    }
    secret = _site_webhook_secret(site, f"{site_url}/twostep/webhooks")
    if secret:
        env["LOGIN_SITE_WEBHOOK_SECRET"] = secret
    if site.sandbox_url:
        env["LOGIN_SITE_SANDBOX_URL"] = site.sandbox_url
    launcher.start(
        "login site", "-m", "examples.login_site", "--port", str(site_port),
        env=env, cwd=_REPOSITORY,
    )  # fmt: skip
    wait_http(f"{site_url}/login", "login site", launcher, interrupted)
    # Browsers take passkeys from a domain only (localhost, not 127.0.0.1): the site is opened
    # as localhost, its relying party (on the sandbox only: never a real service's).
    browsed_url = f"http://localhost:{site_port}"
    if site.sandbox_url:
        set_passkeys(_settings_of(launcher.env), DEFAULT_TENANT, "localhost", [browsed_url])
    return browsed_url


_SITE_SCOPES = frozenset({Scope.VERIFY, Scope.USERS, Scope.USERS_MANAGE})


def _site_webhook_secret(site: _ExampleSite, url: str) -> str | None:
    """The secret of twostep's webhook endpoint for ``url``: the one registered by an earlier
    run while it still sends there, else a new endpoint's (an earlier one on another port is
    deleted). None, with a word why, if twostep would not: the site runs without notices."""
    saved_file = site.data_dir / "login-site-webhook.json"
    saved = json.loads(saved_file.read_text()) if saved_file.exists() else None
    headers = {"Authorization": f"Bearer {site.api_key}"}
    try:
        with httpx.Client(base_url=site.api_url, headers=headers, timeout=10) as http:
            if saved is not None:
                listed = http.get("/v1/webhook-endpoints").raise_for_status().json()["endpoints"]
                live = {endpoint["id"]: endpoint["url"] for endpoint in listed}
                if live.get(saved["id"]) == url:
                    return str(saved["secret"])
                if saved["id"] in live:
                    http.delete(f"/v1/webhook-endpoints/{saved['id']}").raise_for_status()
            answer = http.post("/v1/webhook-endpoints", json={"url": url}).raise_for_status()
            created = answer.json()
    except (httpx.HTTPError, KeyError, ValueError) as error:
        say(f"the login site gets no security notices: no webhook endpoint ({error})")
        return None
    saved_file.write_text(json.dumps({k: created[k] for k in ("id", "url", "secret")}) + "\n")
    saved_file.chmod(0o600)
    return str(created["secret"])


def _settings_of(env: dict[str, str]) -> Settings:
    """The settings the children read from ``env``, for what this process does itself."""
    return Settings(
        environment=env["TWOSTEP_ENVIRONMENT"],
        database_url=env["TWOSTEP_DATABASE_URL"],
        redis_url=env["TWOSTEP_REDIS_URL"],
        twilio_base_url=env.get("TWOSTEP_TWILIO_BASE_URL"),
    )


def _saved_or_new_key(
    settings: Settings, key_file: Path, name: str, scopes: frozenset[Scope]
) -> str:
    """The key saved by an earlier run while it still works with exactly these scopes, else a
    new one (saved for next time)."""
    saved = key_file.read_text().strip() if key_file.exists() else None

    async def reuse_or_create(uow: UnitOfWork) -> str:
        if saved is not None:
            with contextlib.suppress(Unauthorized):
                key = await authenticate(uow, f"Bearer {saved}")
                if set(key.scopes.split(",")) == scopes:
                    return saved
        _key, plaintext = await create_api_key(uow, f"{name}-{int(time.time())}", scopes=scopes)
        return plaintext

    plaintext = run_in_unit_of_work(settings, reuse_or_create)
    if plaintext != saved:
        # Made owner-only before a byte is written, and kept so if it was there already.
        descriptor = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as written:
            written.write(plaintext + "\n")
    return plaintext


def masked_url(url: str) -> str:
    """A URL fit to print: its password, if any, replaced by ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{netloc}"))


@dataclass(frozen=True)
class _Banner:
    """What `twostep dev` prints once everything answers."""

    api_url: str
    site_url: str | None
    sandbox_url: str | None
    flower_url: str | None
    metrics_ports: tuple[int, int]
    redis_note: str
    database_url: str
    api_key: str

    def show(self) -> None:
        api, sandbox, flower, key = self.api_url, self.sandbox_url, self.flower_url, self.api_key
        worker_port, beat_port = self.metrics_ports
        lines = [
            "",
            "twostep is running. Ctrl-C stops everything.",
            f"  API        {api}   (docs: {api}/docs)",
            f"  login site {self.site_url}   (the reference site: sign up, turn on two-step)"
            if self.site_url
            else "  login site not started (twostep dev --example)",
            f"  sandbox    {sandbox}   (codes sent: {sandbox}/sandbox/messages)"
            if sandbox
            else "  Twilio     real Twilio Verify (TWILIO_* credentials are set)",
            f"  Flower     {flower}"
            if flower
            else "  Flower     not started (twostep dev --flower)",
            f"  metrics    {api}/metrics (with the key), worker :{worker_port}, beat :{beat_port}",
            f"  Redis      {self.redis_note}",
            f"  database   {masked_url(self.database_url)}",
            f"  API key    {key}",
            "",
            "Try it:",
            f"  curl -s -X POST {api}/v1/verifications -H 'Authorization: Bearer {key}' \\",
            "       -H 'Content-Type: application/json' -d '{\"to\": \"+14155550123\"}'",
            "",
        ]
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
