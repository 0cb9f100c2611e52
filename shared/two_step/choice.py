"""Which of a user's verified factors a login challenge goes to, and what the login page can
offer instead ("use your authenticator app", "text me instead", "email me"). Pure: no I/O.

The preferred factor is the strongest, then the latest verified: an authenticator app before a
phone or an email address, because its code costs no message, cannot be intercepted on its way
and cannot be pumped. A login server that keeps its users' own choice names the factor instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.errors import LastStrongFactor, NoVerifiedFactor
from shared.two_step.domain import FactorStatus
from shared.two_step.models import Factor
from shared.verifications.domain import Channel
from shared.verifications.models import Verification


@dataclass(frozen=True)
class Choice:
    """The factor a challenge goes to and the user's other verified factors, preferred first."""

    factor: Factor
    alternatives: Sequence[Factor]


@dataclass(frozen=True)
class Challenge:
    verification: Verification
    choice: Choice


def _preference(factor: Factor) -> tuple[bool, datetime]:
    return factor.channel.kind.is_strong, factor.verified_at or factor.created_at


def choose(
    verified: Sequence[Factor], channel: Channel | None, named: Factor | None = None
) -> Choice | None:
    """The factor ``named`` (it must be verified), else the preferred one ``channel`` reaches
    ("email me instead"), else the preferred one; None: two-step is off for the user."""
    if named is not None and named.status is not FactorStatus.VERIFIED:
        raise NoVerifiedFactor(f"factor {named.id} is {named.status.value}")
    reached = [f for f in verified if channel is None or f.channel.kind is channel.kind]
    factor = named or max(reached, key=_preference, default=None)
    if factor is None:
        return None
    others = sorted((f for f in verified if f.id != factor.id), key=_preference, reverse=True)
    return Choice(factor, others)


def refuse_losing_the_last_strong(factor: Factor, verified: Sequence[Factor]) -> None:
    """Disabling the user's last authenticator app leaves only codes sent through networks
    others can read: a downgrade the login server asks for explicitly, once its user agreed."""
    if factor.status is not FactorStatus.VERIFIED or not factor.channel.kind.is_strong:
        return
    if any(f.id != factor.id and f.channel.kind.is_strong for f in verified):
        return
    raise LastStrongFactor(
        f"factor {factor.id} is the user's last {factor.channel.kind.value} factor, and what "
        "is left is weaker: ask again with ?allow_downgrade=true once the user agreed"
    )
