"""``twostep bench``: a login storm against twostep and against an inline baseline, in one go.

    .venv/bin/python -m benchmarks.bench [--quick] [--db postgresql|sqlite] [--scenario NAME]…

Starts a redis-server, the Twilio sandbox, twostep (API, workers, beat) and the inline baseline
(``benchmarks/inline_app.py``: sync routes calling the twilio SDK inside the request), then for
each scenario sets the sandbox's faults and storms each side in turn with simulated users.
Prints a table, writes every figure to a JSON file, and exits 1 if twostep failed a login, lost a
verification or texted a number twice; never because of speed or of the baseline's failures.
Exits 2 if it cannot run (no redis-server, no PostgreSQL, a process that will not start), 130 if
interrupted; every process it started is stopped and its database dropped either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import click
from sqlalchemy import make_url

from benchmarks.database import DEFAULT_POSTGRES_URL, bench_database, wait_settled
from benchmarks.passkeys import InlinePasskeys, TwostepPasskeys
from benchmarks.processes import BenchError, ProcessMeter, Supervisor, Target, Usage, say
from benchmarks.profile import Profiler
from benchmarks.report import (
    ProcessFigures,
    SandboxFigures,
    ScenarioResult,
    SideResult,
    header,
    machine,
    scenario_block,
    write_json,
)
from benchmarks.store_cost import cost_per_login, read_counters
from benchmarks.storm import Inline, StormFigures, System, Twostep, run_storm, storm_figures
from benchmarks.systems import (
    Running,
    SandboxControl,
    start_all,
    twostep_process_names,
    wait_quiet,
)
from benchmarks.totp import InlineApp, TwostepApp

_JITTERY = {"latency_ms": 200, "jitter_ms": 50}


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    faults: dict[str, Any]
    users: int
    logins: int
    quick_users: int
    quick_logins: int
    # Users start evenly over this many seconds, as load arrives in practice; the herd is the
    # scenario where they do not.
    ramp_seconds: float = 1.0
    # What the second step is: a code by "sms", an authenticator app's ("totp") or a passkey's
    # signature ("passkey"); each user of the last two enrolled before the storm.
    factor: str = "sms"


SCENARIOS = (
    Scenario("healthy", "latency 200±50 ms", _JITTERY, 50, 400, 20, 80),
    # Twilio healthy, more users than the inline app has threads: it is bound by its thread pool,
    # twostep by what a login costs it.
    Scenario("busy", "latency 200±50 ms, 200 users", _JITTERY, 200, 1000, 100, 300),
    Scenario("slow", "latency 2000 ms", {"latency_ms": 2000}, 100, 200, 40, 40),
    Scenario(
        "faulty",
        "latency 200±50 ms, 5% 503, 2% hang 8 s",
        {
            **_JITTERY,
            "error_rate": 0.05,
            "error_status": 503,
            "timeout_rate": 0.02,
            "hang_seconds": 8,
        },
        50,
        400,
        20,
        80,
    ),
    Scenario(
        "herd",
        "latency 200±50 ms, every user at once, 1 login each",
        _JITTERY,
        1000,
        1000,
        200,
        200,
        ramp_seconds=0.0,
    ),
    # No SMS round trip: each side is bound by what a login costs it.
    Scenario(
        "totp", "authenticator apps, latency 200±50 ms", _JITTERY, 50, 400, 20, 80, factor="totp"
    ),
    # Two Twilio calls per login (the options, then the approval), a signature verified in each.
    Scenario("passkey", "passkeys, latency 200±50 ms", _JITTERY, 50, 400, 20, 80, factor="passkey"),
    Scenario(
        "passkey-slow",
        "passkeys, latency 2000 ms",
        {"latency_ms": 2000},
        100,
        200,
        40,
        40,
        factor="passkey",
    ),
)
SCENARIO_NAMES = tuple(scenario.name for scenario in SCENARIOS)
# Run on each side before the first scenario and not reported: the figures are those of a
# process that has opened its connections, started its threads and filled its caches, whichever
# scenario runs first. A cold start is a deploy's concern; the processes warm up as they start,
# but pools of threads and of connections to the sandbox still grow with the first load.
WARM_UP = Scenario("warm-up", "no latency, not reported", {}, 50, 100, 20, 40)


@dataclass(frozen=True)
class BenchOptions:
    scenarios: tuple[str, ...] = ()  # empty: all, in the order of SCENARIOS
    quick: bool = False
    db: str = "postgresql"
    postgres_url: str = field(
        default_factory=lambda: os.environ.get("TWOSTEP_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    )
    workers: int = 1
    users: int | None = None
    logins: int | None = None
    json_path: str = "bench-results.json"
    log_dir: str | None = None
    keep_logs: bool = False
    profile: str | None = None  # a directory: py-spy profiles of twostep's processes go there


@dataclass(frozen=True)
class Planned:
    scenario: Scenario
    users: int
    logins: int


def plan(options: BenchOptions) -> list[Planned]:
    chosen = [s for s in SCENARIOS if not options.scenarios or s.name in options.scenarios]
    planned = []
    for scenario in chosen:
        sized = _sized(scenario, options.quick)
        planned.append(
            Planned(scenario, options.users or sized.users, options.logins or sized.logins)
        )
    return planned


def _sized(scenario: Scenario, quick: bool) -> Planned:
    if quick:
        return Planned(scenario, scenario.quick_users, scenario.quick_logins)
    return Planned(scenario, scenario.users, scenario.logins)


def run_bench(options: BenchOptions) -> int:
    """Run every planned scenario on both sides; returns the exit code (see the module's doc)."""
    planned = plan(options)
    info = machine(options.db, options.workers)
    started = time.monotonic()
    results: list[ScenarioResult] = []
    with _sigterm_as_interrupt():
        try:
            _run_all(options, planned, results)
        except BenchError as exc:
            say(f"bench: {exc}")
            return 2
        except KeyboardInterrupt:
            say("bench: interrupted; every process it started has been stopped")
            return 130
    elapsed = round(time.monotonic() - started, 1)
    print(header(info))
    for result in results:
        print()
        print("\n".join(scenario_block(result)))
    problems = twostep_problems(results)
    document = {
        "machine": info,
        "options": dataclasses.replace(options, postgres_url=_shown(options.postgres_url)),
        "elapsed_seconds": elapsed,
        "scenarios": results,
        "twostep_problems": problems,
        "exit_code": 1 if problems else 0,
    }
    write_json(Path(options.json_path), document)
    say(f"figures written to {options.json_path}; the whole run took {elapsed:.0f} s")
    for problem in problems:
        say(f"twostep: {problem}")
    return 1 if problems else 0


def _shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def twostep_problems(results: list[ScenarioResult]) -> list[str]:
    """What makes the run fail: only twostep's correctness, never speed, never the baseline."""
    problems = []
    for result in results:
        side = result.twostep
        if side.storm.failed:
            reasons = ", ".join(f"{reason} x{n}" for reason, n in side.storm.failures.items())
            problems.append(f"{result.name}: {side.storm.failed} failed logins ({reasons})")
        if side.lost:
            problems.append(f"{result.name}: {side.lost} verifications lost ({side.statuses})")
        if side.sandbox.duplicates:
            problems.append(
                f"{result.name}: {side.sandbox.duplicates} numbers texted more than once "
                f"(at most {side.sandbox.max_sends_to_one_destination} times)"
            )
    return problems


def _run_all(options: BenchOptions, planned: list[Planned], results: list[ScenarioResult]) -> None:
    run_id = secrets.token_hex(6)
    with (
        _log_dir(options) as log_dir,
        tempfile.TemporaryDirectory(prefix="twostep-bench-") as work_dir,
        bench_database(options.db, options.postgres_url, Path(work_dir), run_id) as database_url,
        Supervisor(log_dir) as supervisor,
    ):
        running = start_all(supervisor, database_url, options.workers, run_id)
        bench = _Bench(running, SandboxControl(running.sandbox_url), database_url, run_id)
        try:
            warm_up = _sized(WARM_UP, options.quick)
            _run_scenario(bench, warm_up, 0)
            profiled = dataclasses.replace(bench, profile_dir=options.profile)
            offset = warm_up.logins
            for item in planned:
                results.append(_run_scenario(profiled, item, offset))
                offset += item.logins  # user ids stay unique across scenarios
        finally:
            bench.sandbox.close()
        say("stopping everything…")


@dataclass(frozen=True)
class _Bench:
    """What every scenario of one run shares: the processes, the sandbox and the database."""

    running: Running
    sandbox: SandboxControl
    database_url: str
    run_id: str
    profile_dir: str | None = None


def _run_scenario(bench: _Bench, item: Planned, offset: int) -> ScenarioResult:
    scenario = item.scenario
    running, sandbox = bench.running, bench.sandbox
    say(f"{scenario.name}: {scenario.description}; {item.users} users, {item.logins} logins")
    twostep_system, inline_system = _systems(bench, item, offset)
    twostep = _twostep_side(bench, item, offset, twostep_system)
    _ready(sandbox, inline_system, item)
    storm, usage = _storm(inline_system, running.inline_targets(), item)
    inline = _side("inline", storm, usage, sandbox.stats(), ["inline"])
    slower = inline.storm.logins_per_second
    return ScenarioResult(
        name=scenario.name,
        description=scenario.description,
        faults=scenario.faults,
        users=item.users,
        logins=item.logins,
        twostep=twostep,
        inline=inline,
        ratio=round(twostep.storm.logins_per_second / slower, 2) if slower else None,
    )


def _systems(bench: _Bench, item: Planned, offset: int) -> tuple[System, System]:
    running = bench.running
    api, key, sandbox_url = running.api_url, running.api_key, running.sandbox_url
    run_id = f"{bench.run_id}-{offset}"
    if item.scenario.factor == "totp":
        return (
            TwostepApp(api, key, sandbox_url, user_offset=offset),
            InlineApp(running.inline_url, sandbox_url, run_id),
        )
    if item.scenario.factor == "passkey":
        return (
            TwostepPasskeys(api, key, sandbox_url, user_offset=offset),
            InlinePasskeys(running.inline_url, sandbox_url, run_id),
        )
    return Twostep(api, key, sandbox_url, user_offset=offset), Inline(
        running.inline_url, sandbox_url
    )


def _twostep_side(bench: _Bench, item: Planned, offset: int, system: System) -> SideResult:
    running, sandbox, database_url = bench.running, bench.sandbox, bench.database_url
    _ready(sandbox, system, item)
    counted = read_counters(running.redis_url, database_url)
    profiling = _profiler(running, item, bench.profile_dir)
    with profiling or contextlib.nullcontext():
        storm, usage = _storm(system, running.twostep_targets(), item)
    # Requests the users gave up on may still be queued in the API: let it work through them
    # first, so that their rows count here and their SMS do not land in the inline side's stats.
    drained = wait_quiet(system.health_url, item.scenario.name)
    say(f"{item.scenario.name}: waiting for twostep's verifications to settle…")
    settlement = wait_settled(database_url, {f"bench-{offset + n}" for n in range(item.logins)})
    side = _side("twostep", storm, usage, sandbox.stats(), twostep_process_names(running.workers))
    return dataclasses.replace(
        side,
        lost=settlement.lost,
        statuses=settlement.statuses,
        settle_seconds=settlement.waited_seconds,
        drain_seconds=drained,
        store_cost=cost_per_login(
            counted, read_counters(running.redis_url, database_url, settle=True), storm.succeeded
        ),
        profiles=profiling.profiles if profiling else [],
    )


def _profiler(running: Running, item: Planned, directory: str | None) -> Profiler | None:
    if directory is None:
        return None
    own = set(twostep_process_names(running.workers))
    targets = [target for target in running.twostep_targets() if target.name in own]
    return Profiler(targets, Path(directory), item.scenario.name)


def _ready(sandbox: SandboxControl, system: System, item: Planned) -> None:
    """A clean sandbox with the scenario's faults, then the side's users (untimed, unmetered)."""
    sandbox.prepare(item.scenario.faults)
    asyncio.run(system.prepare(item.logins))


def _storm(
    system: System, targets: list[Target], item: Planned
) -> tuple[StormFigures, dict[str, Usage]]:
    label = f"{item.scenario.name}: {system.name}"
    say(f"{label} storm…")
    with ProcessMeter(targets) as meter:
        result = asyncio.run(
            run_storm(system, item.users, item.logins, label, ramp=item.scenario.ramp_seconds)
        )
    figures = storm_figures(result)
    say(
        f"{label} {figures.succeeded}/{figures.logins} logins in {figures.wall_seconds:.1f} s "
        f"({figures.logins_per_second:.1f}/s)"
    )
    return figures, meter.usage()


def _side(
    name: str,
    storm: StormFigures,
    usage: dict[str, Usage],
    stats: dict[str, Any],
    own: list[str],
) -> SideResult:
    def per_login(cpu_seconds: float) -> float | None:
        return round(cpu_seconds * 1000 / storm.succeeded, 2) if storm.succeeded else None

    processes = {
        process: ProcessFigures(used.cpu_seconds, per_login(used.cpu_seconds), used.peak_rss_mib)
        for process, used in usage.items()
    }
    return SideResult(
        side=name,
        storm=storm,
        sandbox=SandboxFigures(
            sends_total=int(stats["sends_total"]),
            max_sends_to_one_destination=int(stats["max_sends_to_one_destination"]),
            duplicates=int(stats["destinations_sent_more_than_once"]),
            requests_total=int(stats["requests_total"]),
            outcomes={str(k): int(v) for k, v in stats.get("outcomes", {}).items()},
        ),
        processes=processes,
        own_cpu_ms_per_login=per_login(sum(usage[process].cpu_seconds for process in own)),
    )


@contextlib.contextmanager
def _log_dir(options: BenchOptions) -> Iterator[Path]:
    if options.log_dir:
        path = Path(options.log_dir)
        path.mkdir(parents=True, exist_ok=True)
        say(f"process logs in {path}")
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="twostep-bench-logs-"))
    try:
        yield path
    finally:
        if options.keep_logs:
            say(f"process logs kept in {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """A SIGTERM (a CI timeout, ``kill``) cleans up like Ctrl-C instead of orphaning children."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        # As SIGINT, so that asyncio.run, if running, cancels the storm cleanly before raising.
        os.kill(os.getpid(), signal.SIGINT)

    # A shell's background job ignores SIGINT; the forwarded SIGTERM must still take effect.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    previous_term = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_term)
        signal.signal(signal.SIGINT, previous_int)


@click.command("bench")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(SCENARIO_NAMES),
    help="run only this scenario (repeatable)  [default: all]",
)
@click.option("--quick", is_flag=True, help="every scenario scaled down: about two minutes in all")
@click.option(
    "--db", type=click.Choice(["postgresql", "sqlite"]), default="postgresql", show_default=True
)
@click.option(
    "--postgres-url",
    envvar="TWOSTEP_BENCH_POSTGRES_URL",
    default=DEFAULT_POSTGRES_URL,
    show_default=True,
    help="server on which a throwaway database is created  [env: TWOSTEP_BENCH_POSTGRES_URL]",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--users", type=click.IntRange(min=1), help="simulated users in every scenario")
@click.option("--logins", type=click.IntRange(min=1), help="logins in every scenario")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default="bench-results.json",
    show_default=True,
)
@click.option("--log-dir", type=click.Path(file_okay=False), help="keep process logs here")
@click.option("--keep-logs", is_flag=True, help="keep the temporary log directory")
@click.option(
    "--profile",
    type=click.Path(file_okay=False),
    help="py-spy twostep's processes during their storms; collapsed stacks and a summary by "
    "package go here",
)
def bench_command(**values: Any) -> None:
    """Login storm: twostep against an inline Twilio integration, on this machine.

    Exits 1 if twostep failed a login, lost a verification or texted a number twice.
    """
    values["scenarios"] = tuple(values["scenarios"])
    sys.exit(run_bench(BenchOptions(**values)))


if __name__ == "__main__":
    bench_command()
