"""``twostep``: one command line for every process of the system (docs/operations.md)."""

from __future__ import annotations

import os
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path

import click

from shared.bootstrap import Core
from shared.errors import TwostepError
from shared.kit import crypto
from shared.kit.jobs import ALL_QUEUES
from shared.kit.settings import Settings
from shared.kit.startup import Misconfigured, flower_auth_problems
from shared.operations.status import ALIVE_SECONDS
from shared.tenants.domain import ALL_SCOPES, DEFAULT_TENANT
from shared.tenants.keys import create_api_key, list_api_keys, parse_scopes, revoke_api_key
from shared.tenants.service import NewTenant
from twostep.common import load_settings, run_in_unit_of_work, run_with_core, with_keyring
from twostep.tenants_cli import ensure_tenant, tenants


class _Commands(click.Group):
    """``twostep bench`` is loaded only when asked for: its code lives in ``benchmarks/`` (a load
    generator is not a service), and no other command should import it."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "bench"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "bench":
            from benchmarks.bench import bench_command

            return bench_command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="twostep")
def main() -> None:
    """twostep: two-step verification for login servers, over Twilio Verify."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn processes")
def api(host: str, port: int, workers: int) -> None:
    """The HTTP API (uvicorn)."""
    import uvicorn

    settings = load_settings("api", checked="api")
    if workers > 1:
        # Several processes answer /metrics in turn: each must show them all.
        _multiprocess_metrics_dir()
    uvicorn.run(
        "api.app:served_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=False,
        proxy_headers=True,
        # Longer than login servers' HTTP clients keep idle connections (Go's 90 s aside): a
        # client that reuses one the server has just closed sees its request fail.
        timeout_keep_alive=75,
    )


def _serve_metrics(settings: Settings, port: int) -> None:
    """This process's Prometheus metrics on ``port`` (a thread of prometheus_client's own)."""
    if port == 0:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr=settings.metrics_host)
    except OSError as exc:
        raise click.ClickException(
            f"cannot serve metrics on {settings.metrics_host}:{port} ({exc.strerror}); "
            "choose another with --metrics-port, or 0 for none"
        ) from exc


def _multiprocess_metrics_dir() -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(
        prefix="twostep-metrics-"
    )
    for stale in Path(directory).glob("*.db"):  # left by an earlier run: counts start at zero
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory


@main.command()
@click.option(
    "--concurrency",
    "-c",
    type=int,
    help="jobs at once  [default: TWOSTEP_WORKER_CONCURRENCY]",
)
@click.option(
    "--queues",
    "-Q",
    default=",".join(ALL_QUEUES),
    show_default=True,
    help="comma-separated queues to consume",
)
@click.option("--name", default=None, help="worker node name  [default: twostep-PID@HOST]")
@click.option(
    "--metrics-port",
    type=int,
    help="Prometheus metrics on this port, 0 for none  [default: TWOSTEP_WORKER_METRICS_PORT]",
)
def worker(
    concurrency: int | None, queues: str, name: str | None, metrics_port: int | None
) -> None:
    """A Celery worker. Its threads hand each job to one event loop per process, where the
    Twilio calls, the database and Redis run: a job waiting on Twilio holds no connection."""
    settings = load_settings("worker", checked="worker")
    _serve_metrics(settings, settings.worker_metrics_port if metrics_port is None else metrics_port)
    from workers.app import app

    app.worker_main(
        [
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency or settings.worker_concurrency}",
            f"--queues={queues}",
            f"--hostname={name or f'twostep-{os.getpid()}@%h'}",
            f"--loglevel={settings.log_level}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@main.command()
@click.option(
    "--metrics-port",
    type=int,
    help="Prometheus metrics on this port, 0 for none  [default: TWOSTEP_BEAT_METRICS_PORT]",
)
def beat(metrics_port: int | None) -> None:
    """The periodic sweeper's clock (Celery beat)."""
    settings = load_settings("beat", checked="beat")
    _serve_metrics(settings, settings.beat_metrics_port if metrics_port is None else metrics_port)
    from workers.app import app

    app.start(["beat", f"--loglevel={settings.log_level}"])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5555, show_default=True, type=int)
def flower(host: str, port: int) -> None:
    """Flower on the workers' Celery app, behind basic auth.

    Credentials come from TWOSTEP_FLOWER_BASIC_AUTH (user:password); without it a random
    password is made up and printed.
    """
    settings = load_settings("flower")
    from workers.app import app

    basic_auth = os.environ.get("TWOSTEP_FLOWER_BASIC_AUTH")
    if not basic_auth:
        basic_auth = f"admin:{secrets.token_urlsafe(12)}"
        click.echo(f"Flower basic auth (set TWOSTEP_FLOWER_BASIC_AUTH to choose): {basic_auth}")
    problems = flower_auth_problems(settings, basic_auth)
    if problems:
        raise click.ClickException(str(Misconfigured(problems)))
    app.start(["flower", f"--address={host}", f"--port={port}", f"--basic-auth={basic_auth}"])


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.option(
    "--allow-remote/--loopback-only",
    default=False,
    show_default=True,
    help="serve /sandbox/* (the codes it sent) to other machines too "
    "[env: TWOSTEP_SANDBOX_ALLOW_REMOTE]",
)
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="keep the Verify services in this JSON file across restarts (verifications and codes "
    "are never kept) [env: TWOSTEP_SANDBOX_STATE_FILE]",
)
def sandbox(host: str, port: int, allow_remote: bool, state_file: str | None) -> None:
    """The Twilio Verify and Lookup sandbox (Twilio's v2 paths, in memory)."""
    from sandbox.server import run

    settings = load_settings("sandbox")
    run(
        host,
        port,
        log_level=settings.log_level,
        allow_remote=allow_remote,
        state_file=state_file,
    )


@main.command()
@click.option(
    "--wait-for",
    "wait_seconds",
    type=click.FloatRange(min=0),
    help="migrate nothing: wait up to this many seconds for the schema to be brought up to "
    "date by another (a deployment's migration job), exit 1 if it is not (an init container)",
)
def migrate(wait_seconds: float | None) -> None:
    """Bring the database schema up to date (alembic upgrade head)."""
    from sqlalchemy.exc import OperationalError

    from shared.kit.db.migrate import current_revision_is_head, current_revisions, upgrade

    settings = with_keyring(load_settings("migrate", checked="migrate"))
    if wait_seconds is None:
        try:
            before = current_revisions(settings.database_url)
            upgrade(settings.database_url)
            after = current_revisions(settings.database_url)
        except (OperationalError, OSError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise click.ClickException(f"cannot reach the database: {reason}") from None
        click.echo(_migrated(before, after))
        return
    deadline = time.monotonic() + wait_seconds
    while not current_revision_is_head(settings.database_url):
        if time.monotonic() >= deadline:
            click.echo(f"the database schema is not up to date after {wait_seconds:g} s", err=True)
            sys.exit(1)
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    click.echo("database schema is up to date")


main.add_command(tenants)


@main.group()
def keys() -> None:
    """API keys: create, list, revoke."""


@keys.command("create")
@click.argument("name")
@click.option(
    "--tenant",
    default=DEFAULT_TENANT,
    show_default=True,
    help="the tenant the key belongs to; it sees only its tenant's data. A tenant that does not "
    "exist yet is made first, as `twostep tenants create` makes it",
)
@click.option(
    "--scopes",
    default=",".join(sorted(ALL_SCOPES)),
    show_default=True,
    help="comma-separated: verify (verifications, checks), users (enrolling factors, "
    "challenges, redeeming recovery codes), users:manage (removing factors, new recovery "
    "codes, a user's events: with verify and users, what a login site needs), admin "
    "(lockouts, webhooks, /metrics)",
)
def keys_create(name: str, tenant: str, scopes: str) -> None:
    """Create a key; it is printed once, as the last line, and stored only hashed."""
    try:
        chosen = parse_scopes(scopes)
    except TwostepError as exc:
        raise click.BadParameter(exc.detail, param_hint="--scopes") from exc
    settings = load_settings("keys")
    _, made = ensure_tenant(settings, NewTenant(tenant))
    if made:
        click.echo(f"created tenant {tenant!r} with a Verify service of its own", err=True)
    key, plaintext = run_in_unit_of_work(
        settings, lambda uow: create_api_key(uow, name, tenant=tenant, scopes=chosen)
    )
    click.echo(
        f"created API key {key.name!r} of tenant {tenant!r} with scopes {key.scopes}; "
        "it is shown only now:",
        err=True,
    )
    click.echo(plaintext)


@keys.command("list")
def keys_list() -> None:
    """Names, tenants, scopes, prefixes and states of every key (never the keys themselves)."""
    rows, tenants = run_in_unit_of_work(load_settings("keys"), list_api_keys)
    if not rows:
        click.echo("no API keys; create one with: twostep keys create NAME")
        return
    click.echo(f"{'NAME':<28} {'TENANT':<16} {'SCOPES':<20} {'PREFIX':<14} {'CREATED':<20} STATE")
    for key in rows:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
        created = f"{key.created_at:%Y-%m-%d %H:%M:%S}"
        tenant = tenants.get(key.tenant_id, "?")
        click.echo(
            f"{key.name:<28} {tenant:<16} {key.scopes:<20} {key.key_prefix + '…':<14} "
            f"{created:<20} {state}"
        )


@keys.command("generate-data-key")
def keys_generate_data_key() -> None:
    """Print a new data key for TWOSTEP_DATA_KEYS (put it first; keep the old ones after it
    until `twostep rekey` has run)."""
    click.echo(crypto.generate_data_key())


@keys.command("revoke")
@click.argument("name")
def keys_revoke(name: str) -> None:
    """Revoke a key; requests with it get 401 from then on (within TWOSTEP_API_KEY_CACHE_SECONDS,
    5 s by default, as each API process remembers a key that long)."""
    run_in_unit_of_work(load_settings("keys"), lambda uow: revoke_api_key(uow, name))
    click.echo(f"revoked API key {name!r}")


@main.command()
@click.option(
    "--worker",
    "node",
    help="only whether this worker is alive (its heartbeat is recent): exit 0 if so, 1 if not; "
    "%h stands for this host's name, as in `twostep worker --name worker@%h` (a container's "
    "liveness probe)",
)
def status(node: str | None) -> None:
    """Queues and their oldest job, workers alive, the sweeper's last run, the provider's
    error rate over five minutes, the oldest verifications still in flight."""
    from twostep.status_report import render

    if node is not None:
        _worker_alive(node.replace("%h", socket.gethostname()))
        return

    async def gather(core: Core) -> str:
        async with core.uow_factory.reading() as uow:
            return render(await core.fleet.status(uow))

    try:
        click.echo(run_with_core(load_settings("status"), gather))
    except OSError as exc:
        raise click.ClickException(f"cannot read the fleet's state: {exc}") from exc


def _migrated(before: set[str], after: set[str]) -> str:
    """What ``migrate`` did, in one line."""
    now = ", ".join(sorted(after))
    if before == after:
        return f"database schema is up to date (already at {now})"
    was = ", ".join(sorted(before)) or "an empty database"
    return f"database schema is up to date: migrated from {was} to {now}"


def _worker_alive(node: str) -> None:
    """Exit 0 when ``node``'s heartbeat is recent, else 1 with a line saying so."""

    async def seen(core: Core) -> float | None:
        return await core.fleet.seen_seconds_ago(node)

    try:
        ago = run_with_core(load_settings("status"), seen)
    except OSError as exc:
        raise click.ClickException(f"cannot read {node}'s heartbeat: {exc}") from exc
    if ago is None:
        click.echo(f"{node}: no heartbeat in {ALIVE_SECONDS:.0f} s", err=True)
        sys.exit(1)
    click.echo(f"{node}: alive, seen {ago:.1f} s ago")


@main.command()
def rekey() -> None:
    """Re-encrypt phone numbers and IPs under the first of TWOSTEP_DATA_KEYS and recompute the
    keyed hashes under TWOSTEP_LOOKUP_KEY; safe to run while twostep serves traffic."""
    from shared.operations.rekey import rekey as rekey_rows

    def progress(column: str, done: int) -> None:
        click.echo(f"  {column}: {done} rows", err=True)

    async def run(core: Core) -> dict[str, int]:
        return await rekey_rows(core.uow_factory, core.keyring, progress)

    rewritten = run_with_core(load_settings("rekey", checked="migrate"), run)
    total = sum(rewritten.values())
    click.echo(f"rekeyed {total} values in {len(rewritten)} columns; old data keys may go now")


@main.command()
@click.option("--api-port", default=8000, show_default=True, type=int)
@click.option("--sandbox-port", default=8765, show_default=True, type=int)
@click.option(
    "--data-dir", default=".twostep", show_default=True, help="SQLite file, logs, dev key"
)
@click.option("--flower/--no-flower", default=False, show_default=True, help="also start Flower")
@click.option(
    "--example/--no-example",
    default=False,
    show_default=True,
    help="also start the reference login site (examples/login_site; a clone of the repository)",
)
@click.option("--example-port", default=8080, show_default=True, type=int)
def dev(
    api_port: int, sandbox_port: int, data_dir: str, flower: bool, example: bool, example_port: int
) -> None:
    """Everything for a local try-out: migrate, then API, worker, beat and the sandbox (and,
    with --example, the reference login site)."""
    from twostep.dev import DevOptions, run_dev

    options = DevOptions(
        api_port=api_port,
        sandbox_port=sandbox_port,
        data_dir=data_dir,
        flower=flower,
        example=example,
        example_port=example_port,
    )
    sys.exit(run_dev(options))


if __name__ == "__main__":
    main()
