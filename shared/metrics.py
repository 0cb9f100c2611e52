"""Prometheus metrics. Counts only: never a code, never a number, never a user id as a label."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

LIMIT_REFUSALS = Counter(
    "twostep_limit_refusals_total", "Requests refused by a limit, by limit", ["limit"]
)
USER_LOCKOUTS = Counter(
    "twostep_user_lockouts_total",
    "Users or numbers locked out after wrong codes, by kind (timed, hard: until released)",
    ["kind"],
)
DAILY_CAP_NEAR = Counter(
    "twostep_daily_cap_near_total",
    "Sends admitted with a daily spending cap past TWOSTEP_CAP_WARNING_RATIO, by cap",
    ["cap"],
)
DAILY_CAP_USAGE = Gauge(
    "twostep_daily_cap_usage_ratio",
    "Share of the deployment-wide daily cap used in its current window",
    ["cap"],
)
PROVIDER_THROTTLE_WAITS = Counter(
    "twostep_provider_throttle_waits_total",
    "Provider requests that waited for the fleet-wide throttle",
)
PROVIDER_THROTTLE_REQUEUES = Counter(
    "twostep_provider_throttle_requeues_total",
    "Jobs put back on the queue because the throttle's wait outlasted their claim",
)
LONG_POLLS_WAITING = Gauge(
    "twostep_long_polls_waiting", "Requests of this API process waiting in a long-poll (?wait=)"
)
