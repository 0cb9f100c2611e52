"""Errors of the core. Entry points map them to their own world (HTTP statuses, task outcomes).

::

    TwostepError                      .code is a stable snake_case word, str(e) a human detail
      InvalidInput                    the caller sent something unusable
        InvalidPhoneNumber
        IdempotencyKeyReused          the same Idempotency-Key with a different request
      Unauthorized                    no or a bad API key
      InsufficientScope               the key may not do this (it lacks the route's scope)
      NotFound
      Conflict                        the resource is not in a state that allows this
        VerificationNotPending
        NoVerifiedFactor              a login challenge for a user without 2SA
        PasskeysNotSetUp              the tenant has no relying party (twostep tenants passkeys)
      CountryNotAllowed               the destination's country is not on the allow-list
      RateLimited                     a limit refused the request: .limit, .retry_after
        CheckAttemptsExhausted        every check a verification allows has been used
        UserLocked                    too many wrong codes for this user, for now
      ServiceUnavailable              a dependency (Redis, the broker) is down; try again later

    ProviderError                     raised by a Verify port (Twilio or a fake); never reaches HTTP
      ProviderTransientError          may succeed if retried: timeouts, 5xx, 20429
      ProviderFinalError              final for this verification: 60202, 60203, 60212, 20404
      ProviderPermanentError          permanent for this number: 60200, 60205, 60410, 60605

The core never speaks HTTP; ``api.errors`` owns the status codes. ``ErrorCode`` and
``AttemptError`` are the words a job row (a send, a check, a webhook delivery) records for why
it ended badly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorCode(StrEnum):
    """Stable words for why a verification or check ended badly (``error.code`` in the API)."""

    INVALID_PHONE_NUMBER = "invalid_phone_number"
    LANDLINE_NOT_SUPPORTED = "landline_not_supported"
    FRAUD_BLOCKED = "fraud_blocked"
    COUNTRY_BLOCKED = "country_blocked"
    PROVIDER_REJECTED = "provider_rejected"
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    MAX_SEND_ATTEMPTS_REACHED = "max_send_attempts_reached"
    MAX_CHECK_ATTEMPTS_REACHED = "max_check_attempts_reached"
    VERIFICATION_EXPIRED = "verification_expired"
    CODE_UNAVAILABLE = "code_unavailable"
    # A newer verification to the same number took this one's place.
    SUPERSEDED = "superseded"
    # Twilio Lookup: the number is not of a line type codes may go to (a landline, VoIP...).
    LINE_TYPE_NOT_ALLOWED = "line_type_not_allowed"
    # Twilio Lookup: the number's SIM changed recently; codes by SMS or call are refused for now.
    SIM_SWAP_DETECTED = "sim_swap_detected"
    # The Twilio Verify service cannot send on this channel: no email integration (60217), no
    # WhatsApp sender (68008), or the channel is turned off on it (60223).
    CHANNEL_NOT_CONFIGURED = "channel_not_configured"


@dataclass(frozen=True, slots=True)
class AttemptError:
    """Why an attempt at a job (a send, a check) did not succeed, as its row records it."""

    reason: ErrorCode
    message: str
    provider_code: int | None = None


class TwostepError(Exception):
    code = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(TwostepError):
    code = "invalid_request"


class InvalidPhoneNumber(InvalidInput):
    code = "invalid_phone_number"


class InvalidEmailAddress(InvalidInput):
    code = "invalid_email_address"


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency_key_reused"


class Unauthorized(TwostepError):
    code = "unauthorized"


class InsufficientScope(TwostepError):
    code = "insufficient_scope"


class NotFound(TwostepError):
    code = "not_found"


class Conflict(TwostepError):
    code = "conflict"


class VerificationNotPending(Conflict):
    code = "verification_not_pending"


class ChannelMismatch(Conflict):
    """A re-send or a challenge on a channel that cannot reach the destination or the user's
    factors: their state (what they are), not the request's shape, refuses it."""

    code = "channel_mismatch"


class LastStrongFactor(Conflict):
    code = "last_strong_factor"


class FactorNotVerified(Conflict):
    code = "factor_not_verified"


class NoVerifiedFactor(Conflict):
    code = "no_verified_factor"


class PasskeysNotSetUp(Conflict):
    code = "passkeys_not_set_up"


class CountryNotAllowed(TwostepError):
    code = "country_not_allowed"


class RateLimited(TwostepError):
    """A limit refused the request. ``limit`` names which one; ``retry_after`` is in seconds."""

    code = "rate_limited"

    def __init__(self, detail: str, *, limit: str, retry_after: int) -> None:
        super().__init__(detail)
        self.limit = limit
        self.retry_after = max(1, retry_after)


class CheckAttemptsExhausted(RateLimited):
    code = "max_attempts_reached"


class UserLocked(RateLimited):
    code = "user_locked"


class ServiceUnavailable(TwostepError):
    code = "service_unavailable"

    def __init__(self, detail: str, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ProviderError(Exception):
    """A provider call did not give a usable answer.

    ``reason`` is our word for the outcome, ``provider_code`` the provider's own error code
    (Twilio's 20429, 60203, ...) and ``status`` the HTTP status, when there were ones.
    """

    def __init__(
        self,
        message: str,
        *,
        reason: ErrorCode = ErrorCode.PROVIDER_REJECTED,
        provider_code: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.provider_code = provider_code
        self.status = status


class ProviderTransientError(ProviderError):
    """Worth retrying. ``ambiguous`` means the provider may have acted on the request anyway
    (the answer was lost, not refused), so a retry must first look at what the provider holds."""

    def __init__(
        self,
        message: str,
        *,
        provider_code: int | None = None,
        status: int | None = None,
        ambiguous: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            reason=ErrorCode.PROVIDER_UNAVAILABLE,
            provider_code=provider_code,
            status=status,
        )
        self.ambiguous = ambiguous
        self.retry_after = retry_after


class ProviderFinalError(ProviderError):
    """The provider will not act on this verification again (max attempts, gone)."""


class ProviderPermanentError(ProviderError):
    """The provider refuses this number for good (invalid, landline, fraud or geo block)."""
