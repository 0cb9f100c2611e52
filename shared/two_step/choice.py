"""Which of a user's verified factors a login challenge goes to, and what the login page can
offer instead ("use your authenticator app", "text me instead", "email me"). Pure: no I/O.

The preferred factor is the strongest, then the latest verified: a passkey, whose signature
cannot be phished, then an authenticator app, then a phone or an email address — an app's code
costs no message, cannot be intercepted on its way and cannot be pumped. A login server that
keeps its users' own choice names the factor instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.errors import ChannelMismatch, FactorNotVerified, LastStrongFactor
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
class LoginChallenge:
    verification: Verification
    choice: Choice


def _preference(factor: Factor) -> tuple[int, datetime]:
    return factor.channel.kind.strength, factor.verified_at or factor.created_at


def choose(
    verified: Sequence[Factor], channel: Channel | None, named: Factor | None = None
) -> Choice | None:
    """The factor ``named`` (it must be verified), else the preferred one ``channel`` reaches
    ("email me instead"), else the preferred one; None only when two-step is off for the user:
    a factor named that is no longer verified, or a channel none of the user's factors takes,
    is a refusal of its own, never mistaken for "two-step is off"."""
    if named is not None and named.status is not FactorStatus.VERIFIED:
        raise FactorNotVerified(
            f"factor {named.id} is {named.status.value}: challenge one of the user's verified "
            "factors (GET …/factors)"
        )
    if not verified:
        return None
    reached = [f for f in verified if channel is None or f.channel.kind is channel.kind]
    factor = named or max(reached, key=_preference, default=None)
    if factor is None:
        kinds = sorted({f.channel.kind.value for f in verified})
        raise ChannelMismatch(
            f"none of the user's factors is reached by {channel}: they are {', '.join(kinds)}"
        )
    others = sorted((f for f in verified if f.id != factor.id), key=_preference, reverse=True)
    return Choice(factor, others)


def refuse_losing_the_last_strong(factor: Factor, verified: Sequence[Factor]) -> None:
    """Disabling the user's last passkey or authenticator app leaves only codes sent through
    networks others can read: a downgrade the login server asks for explicitly, once its user
    agreed."""
    if factor.status is not FactorStatus.VERIFIED or not factor.channel.kind.is_strong:
        return
    if any(f.id != factor.id and f.channel.kind.is_strong for f in verified):
        return
    left = "only weaker ones are left" if len(verified) > 1 else "two-step would be off"
    raise LastStrongFactor(
        f"factor {factor.id} is the user's last {factor.channel.kind.value} factor and "
        f"{left}: ask again with ?allow_downgrade=true once the user agreed"
    )
