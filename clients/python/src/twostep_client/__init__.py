"""Python client for twostep, two-step verification for login servers.

::

    from twostep_client import TwostepClient

    with TwostepClient("https://twostep.internal", api_key) as twostep:
        verification = twostep.start_verification(to="+14155550123", user_id="42")
        ...
        if twostep.check(verification.id, typed_code, wait=10).approved:
            let_the_user_in()

``AsyncTwostepClient`` has the same methods, to ``await``.
"""

from twostep_client import errors
from twostep_client._async.client import AsyncTwostepClient
from twostep_client._models import (
    Challenge,
    Channel,
    Check,
    CheckStatus,
    DisabledReason,
    Enrollment,
    Event,
    EventPage,
    Factor,
    Factors,
    FactorStatus,
    FactorType,
    Failure,
    Limits,
    Lockout,
    Purpose,
    Redemption,
    SendLimit,
    Verification,
    VerificationStatus,
)
from twostep_client._sync.client import TwostepClient
from twostep_client._version import __version__
from twostep_client.errors import *  # noqa: F403 - every exception, as errors.__all__ lists

__all__ = [
    "AsyncTwostepClient",
    "Challenge",
    "Channel",
    "Check",
    "CheckStatus",
    "DisabledReason",
    "Enrollment",
    "Event",
    "EventPage",
    "Factor",
    "FactorStatus",
    "FactorType",
    "Factors",
    "Failure",
    "Limits",
    "Lockout",
    "Purpose",
    "Redemption",
    "SendLimit",
    "TwostepClient",
    "Verification",
    "VerificationStatus",
    "__version__",
    *errors.__all__,
]
