"""The benchmark's figures: what was measured per scenario and side, the table on stdout and the
JSON file."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from benchmarks.profile import Profile
from benchmarks.store_cost import StoreCost
from benchmarks.storm import Percentiles, StormFigures


@dataclass(frozen=True)
class ProcessFigures:
    cpu_seconds: float
    cpu_ms_per_login: float | None  # per successful login
    peak_rss_mib: float


@dataclass(frozen=True)
class SandboxFigures:
    sends_total: int
    max_sends_to_one_destination: int
    duplicates: int  # destinations sent more than once
    requests_total: int
    outcomes: dict[str, int]


@dataclass(frozen=True)
class SideResult:
    side: str
    storm: StormFigures
    sandbox: SandboxFigures
    processes: dict[str, ProcessFigures]
    own_cpu_ms_per_login: float | None  # twostep: api + workers + beat; inline: its one process
    lost: int | None = None  # twostep only: neither pending nor final 15 s after the storm
    statuses: dict[str, int] | None = None
    settle_seconds: float | None = None
    drain_seconds: float | None = None  # until the API answered promptly again after the storm
    store_cost: StoreCost | None = None  # twostep only
    profiles: list[Profile] = field(default_factory=list)  # twostep only, with --profile


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    description: str
    faults: dict[str, Any]
    users: int
    logins: int
    twostep: SideResult
    inline: SideResult
    ratio: float | None  # twostep logins/s ÷ inline logins/s

    @property
    def cpu_ratio(self) -> float | None:
        """CPU per login in twostep's own processes ÷ in the inline app, in this run."""
        ours, theirs = self.twostep.own_cpu_ms_per_login, self.inline.own_cpu_ms_per_login
        return round(ours / theirs, 1) if ours is not None and theirs else None


def machine(db: str, workers: int) -> dict[str, Any]:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "db": db,
        "workers": workers,
    }


def header(info: dict[str, Any]) -> str:
    return (
        f"machine: {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM, "
        f"Python {info['python']}; db {info['db']}; twostep workers: {info['workers']}"
    )


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _pair(figures: Percentiles) -> str:
    return f"{_ms(figures.p50_ms)}/{_ms(figures.p99_ms)}"


_COLUMNS = (
    ("", 8),
    ("logins/s", 9),
    ("ok/total", 11),
    ("login p50/p99", 15),
    ("call p50/p99", 15),
    ("long-polls n p50/p99", 22),
    ("cheap p50/p99/max", 22),
    ("lost", 6),
    ("sends", 7),
    ("max/dest", 10),
    ("dup", 5),
)


def _row(cells: list[str]) -> str:
    first, *rest = cells
    return (
        "  "
        + first.ljust(_COLUMNS[0][1])
        + "".join(cell.rjust(width) for cell, (_, width) in zip(rest, _COLUMNS[1:], strict=True))
    )


def _side_row(side: SideResult) -> str:
    storm = side.storm
    polls = storm.long_polls
    return _row(
        [
            side.side,
            f"{storm.logins_per_second:.1f}",
            f"{storm.succeeded}/{storm.logins}",
            _pair(storm.login),
            _pair(storm.calls),
            f"{polls.count} {_pair(polls)}" if polls.count else "—",
            f"{_pair(storm.cheap)}/{_ms(storm.cheap.max_ms)}",
            "—" if side.lost is None else str(side.lost),
            str(side.sandbox.sends_total),
            str(side.sandbox.max_sends_to_one_destination),
            str(side.sandbox.duplicates),
        ]
    )


def _per_process(side: SideResult, figure: str) -> str:
    parts = []
    for name, process in side.processes.items():
        value = process.cpu_ms_per_login if figure == "cpu" else process.peak_rss_mib
        parts.append(f"{name} {_ms(value)}")
    text = ", ".join(parts)
    if figure == "cpu" and side.side == "twostep":
        text += f" (twostep's own: {_ms(side.own_cpu_ms_per_login)})"
    return f"{side.side}: {text}"


def _failures(side: SideResult) -> str:
    failures = side.storm.failures
    if not failures:
        return f"{side.side}: none"
    return f"{side.side}: " + ", ".join(f"{reason} x{n}" for reason, n in failures.items())


def _cheap_errors(result: ScenarioResult) -> list[str]:
    """Unanswered cheap requests are not in the percentiles; they must not go unseen."""
    notes = []
    for side in (result.twostep, result.inline):
        storm = side.storm
        if storm.cheap_errors:
            asked = storm.cheap_errors + storm.cheap.count
            notes.append(f"{side.side}: {storm.cheap_errors} of {asked} failed or timed out")
    return [f"  cheap errors  {'; '.join(notes)} (not in the percentiles)"] if notes else []


def _resent(result: ScenarioResult) -> list[str]:
    notes = []
    for side in (result.twostep, result.inline):
        if side.storm.resent_gets:
            kinds = ", ".join(f"{kind} x{n}" for kind, n in side.storm.resent_gets.items())
            notes.append(f"{side.side}: {kinds}")
    return [f"  resent GETs   {'; '.join(notes)} (connection lost under them)"] if notes else []


def _store_cost(side: SideResult) -> list[str]:
    cost = side.store_cost
    if cost is None:
        return []
    sql = (
        f", SQL {cost.sql_transactions_per_login} transactions and "
        f"{cost.sql_rows_written_per_login} rows written"
        if cost.sql_transactions_per_login is not None
        else ""
    )
    top = ", ".join(f"{name} {n}" for name, n in cost.redis_top_commands.items())
    return [
        f"  stores/login  {side.side}: Redis {cost.redis_round_trips_per_login} round trips, "
        f"{cost.redis_commands_per_login} commands{sql}",
        f"                Redis commands: {top}",
    ]


def _profiles(side: SideResult) -> list[str]:
    lines = []
    for profile in side.profiles:
        biggest = list(profile.by_package.items())[:8]
        top = ", ".join(f"{name} {share:.0%}" for name, share in biggest)
        lines.append(f"  py-spy {profile.process} ({profile.samples} samples): {top}")
    return lines


def scenario_block(result: ScenarioResult) -> list[str]:
    ratio = "—" if result.ratio is None else f"{result.ratio:.2f}x"
    return [
        f"{result.name}: {result.description}; {result.users} users, {result.logins} logins "
        "(latencies in ms)",
        _row([title for title, _ in _COLUMNS]),
        _side_row(result.twostep),
        _side_row(result.inline),
        f"  ratio twostep/inline logins/s: {ratio}; CPU per login: "
        + ("—" if result.cpu_ratio is None else f"{result.cpu_ratio}x the inline app's"),
        f"  CPU ms/login  {_per_process(result.twostep, 'cpu')}",
        f"                {_per_process(result.inline, 'cpu')}",
        f"  peak RSS MiB  {_per_process(result.twostep, 'rss')}",
        f"                {_per_process(result.inline, 'rss')}",
        f"  failed        {_failures(result.twostep)}",
        f"                {_failures(result.inline)}",
        *_store_cost(result.twostep),
        *_profiles(result.twostep),
        *_cheap_errors(result),
        *_resent(result),
    ]


def write_json(path: Path, document: dict[str, Any]) -> None:
    def encode(value: object) -> object:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        raise TypeError(f"cannot encode {type(value).__name__}")

    path.write_text(json.dumps(document, indent=2, default=encode, ensure_ascii=False) + "\n")
