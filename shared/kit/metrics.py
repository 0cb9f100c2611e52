"""Prometheus metrics. Counts and timings only: never a code, never a number, never a user id
or a tenant as a label.

Every process serves its own registry: the API on ``/metrics`` (an ``admin`` key; with
``--workers N`` the processes share one through prometheus_client's multiprocess mode), each
worker and beat on a port of their own (``TWOSTEP_WORKER_METRICS_PORT``,
``TWOSTEP_BEAT_METRICS_PORT``). Prometheus sums across processes. docs/operations.md lists
every metric; a test scrapes every process after a flow and finds each of them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Twilio calls take 0.1 s to 10 s (the read timeout); the decision path is seconds to a minute.
_CALL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20)
_FLOW_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)

# --- the API
HTTP_REQUESTS = Counter(
    "twostep_http_requests_total",
    "API requests by route template, method and status",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "twostep_http_request_seconds",
    "API request duration by route template (a long-poll counts its wait)",
    ["route"],
)
LONG_POLLS_WAITING = Gauge(
    "twostep_long_polls_waiting",
    "Requests of this API process waiting in a long-poll (?wait=)",
    multiprocess_mode="livesum",
)

# --- limits (API and workers)
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
    multiprocess_mode="max",
)

# --- the provider (workers)
PROVIDER_CALL_SECONDS = Histogram(
    "twostep_provider_call_seconds",
    "Twilio calls' duration by operation (create, fetch, check)",
    ["operation"],
    buckets=_CALL_BUCKETS,
)
PROVIDER_OUTCOMES = Counter(
    "twostep_provider_outcomes_total",
    "Twilio calls by operation, outcome (ok, transient, final, permanent) and Twilio error code",
    ["operation", "outcome", "code"],
)
PROVIDER_THROTTLE_WAITS = Counter(
    "twostep_provider_throttle_waits_total",
    "Provider requests that waited for the fleet-wide throttle",
)
PROVIDER_THROTTLE_REQUEUES = Counter(
    "twostep_provider_throttle_requeues_total",
    "Jobs put back on the queue because the throttle's wait outlasted their claim",
)
JOB_RETRIES = Counter(
    "twostep_job_retries_total", "Jobs put back for a retry after a transient error", ["job"]
)
JOBS_SKIPPED = Counter(
    "twostep_jobs_skipped_total",
    "Jobs that found their row done or held by another worker: a duplicate delivery, harmless",
    ["job"],
)
RECONCILIATIONS = Counter(
    "twostep_reconciliations_total",
    "Lost answers resolved without a second provider action: a send found already made "
    "(send), a check found approved by its lost call (check)",
    ["job"],
)
TIME_TO_PENDING = Histogram(
    "twostep_time_to_pending_seconds",
    "From a verification's request to its code sent (first sends only), by channel",
    ["channel"],
    buckets=_FLOW_BUCKETS,
)
TIME_TO_DECISION = Histogram(
    "twostep_time_to_decision_seconds",
    "From a check's submission to its decision, by channel (totp: an authenticator app)",
    ["channel"],
    buckets=_FLOW_BUCKETS,
)
VERIFICATIONS_FINAL = Counter(
    "twostep_verifications_final_total",
    "Verifications that reached a final state, by state and channel (counted where they "
    "reached it)",
    ["status", "channel"],
)
FACTOR_CHANGES = Counter(
    "twostep_factor_changes_total",
    "Users' factors by type (phone, email, totp) and change (enrollment_started, verified, "
    "enrollment_failed, replaced, disabled)",
    ["type", "change"],
)
WEBHOOK_DELIVERIES = Counter(
    "twostep_webhook_deliveries_total",
    "Webhook deliveries ended, by outcome (delivered, failed); retries are job retries",
    ["outcome"],
)

# --- the sweeper (a worker runs it, on beat's clock)
SWEEPS = Counter("twostep_sweeps_total", "Sweeper runs")
QUEUE_DEPTH = Gauge(
    "twostep_queue_depth", "Jobs waiting in each queue, as the last sweep saw them", ["queue"]
)
QUEUE_OLDEST_AGE = Gauge(
    "twostep_queue_oldest_age_seconds",
    "Age of each queue's oldest waiting job, as the last sweep saw it (0: empty)",
    ["queue"],
)

WORKERS_ALIVE = Gauge(
    "twostep_workers_alive",
    "Workers with a heartbeat in the last 15 s, as the last sweep saw them",
    multiprocess_mode="max",
)

SWEEP_REPUBLISHED = Counter(
    "twostep_sweep_republished_total", "Jobs the sweeper published again, by job", ["job"]
)

# --- beat
BEAT_SENT = Counter("twostep_beat_sent_total", "Periodic jobs beat published, by job", ["job"])


def _start_at_zero() -> None:
    """Label values known in advance are exported from the start, at zero: a rate over a
    series that does not exist yet is no rate, and an alert on it never fires."""
    for job in ("send", "check"):
        RECONCILIATIONS.labels(job=job)
    for job in ("send", "check", "webhook"):
        JOB_RETRIES.labels(job=job)
        JOBS_SKIPPED.labels(job=job)
    for job in ("send", "check", "webhook"):
        SWEEP_REPUBLISHED.labels(job=job)
    for kind in ("timed", "hard"):
        USER_LOCKOUTS.labels(kind=kind)
    for cap in ("per_api_key_daily", "per_country", "global_daily"):
        DAILY_CAP_NEAR.labels(cap=cap)
    for outcome in ("delivered", "failed"):
        WEBHOOK_DELIVERIES.labels(outcome=outcome)
    for operation in ("create", "fetch", "check"):
        PROVIDER_CALL_SECONDS.labels(operation=operation)
        PROVIDER_OUTCOMES.labels(operation=operation, outcome="ok", code="none")
    for limit in (
        "per_destination", "per_user", "per_client_ip", "per_api_key", "per_api_key_daily",
        "per_country", "global_daily", "resend_cooldown", "user_lockout", "destination_lockout",
        "recovery_code_sets", "client_lockout",
    ):  # fmt: skip
        LIMIT_REFUSALS.labels(limit=limit)


_start_at_zero()


def exposition(registry: CollectorRegistry | None = None) -> tuple[bytes, str]:
    """This process's metrics in Prometheus's text format; in multiprocess mode (the API with
    several uvicorn workers), every process's together."""
    if registry is None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry or REGISTRY), CONTENT_TYPE_LATEST
