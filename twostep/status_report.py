"""How `twostep status` prints the fleet's state."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.operations.status import ALIVE_SECONDS, Status


def render(status: Status) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"twostep status at {now}", "", "queues"]
    for queue in status.queues:
        oldest = _seconds(queue.oldest_age_seconds) if queue.depth else "—"
        lines.append(f"  {queue.name:<18} {queue.depth:>7} waiting   oldest {oldest}")
    lines += ["", f"workers (a heartbeat in the last {ALIVE_SECONDS:.0f} s)"]
    if not status.workers:
        lines.append("  none alive: nothing is being sent")
    lines += [
        f"  {worker.name:<40} seen {_seconds(worker.seen_seconds_ago)} ago"
        for worker in status.workers
    ]
    sweeper = status.sweeper_seconds_ago
    provider = status.provider
    rate = provider.error_rate
    lines += [
        "",
        "sweeper",
        f"  last run {_seconds(sweeper)} ago" if sweeper is not None else "  no run in an hour",
        "",
        "provider (last 5 minutes)",
        f"  {provider.calls} calls, {provider.failed} failed"
        + (f" ({rate:.1%})" if rate is not None else ""),
        "",
        "verifications in flight",
        f"  oldest queued or sending  {_row(status.oldest_in_flight)}",
        f"  oldest pending            {_row(status.oldest_pending)}",
    ]
    return "\n".join(lines)


def _row(found: tuple[str, float] | None) -> str:
    if found is None:
        return "—"
    row_id, age = found
    return f"{_seconds(age)} old ({row_id})"


def _seconds(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"
