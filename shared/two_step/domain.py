"""A factor's states (docs/two-step.md): enrolled, verified by a first right code, disabled —
and why it was disabled."""

from __future__ import annotations

from enum import StrEnum


class FactorStatus(StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    DISABLED = "disabled"


class DisabledReason(StrEnum):
    """Why a factor is ``disabled``: for the login server's owner, who must be able to tell a
    removal from an enrolment that could not be (the end user is told neither)."""

    REMOVED = "removed"  # by the login server (DELETE …/factors/{id})
    REPLACED = "replaced"  # by a newer factor of its kind, once that was verified
    IN_USE = "in_use"  # its phone or address is verified for another user of the tenant
