"""A factor's states (docs/two-step.md): enrolled, verified by a first right code, disabled."""

from __future__ import annotations

from enum import StrEnum


class FactorStatus(StrEnum):
    UNVERIFIED = "unverified"
    VERIFIED = "verified"
    DISABLED = "disabled"
