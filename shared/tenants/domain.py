"""Tenants' words: what a key may do, and the tenant rows from before tenants belong to."""

from __future__ import annotations

from enum import StrEnum


class Scope(StrEnum):
    """What an API key may do. A key holds one or more."""

    VERIFY = "verify"  # verifications and their checks
    USERS = "users"  # enrolling and listing factors, login challenges, redeeming recovery codes
    # What a login site also needs, and no more: removing a factor, a new set of recovery codes,
    # a user's audit trail.
    USERS_MANAGE = "users:manage"
    # The operator's: lifting lockouts, webhooks and their deliveries, /metrics.
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)


DEFAULT_TENANT = "default"
