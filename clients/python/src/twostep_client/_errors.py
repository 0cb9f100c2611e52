"""One exception per problem ``code`` the API answers with, under a small tree, so a login
server can catch as broadly or as narrowly as it likes::

    TwostepError
      TwostepConnectionError        no answer: the API unreachable, or a timeout
      UnexpectedAnswer              an answer this client cannot read (not twostep's, or newer)
      ApiError                      an answer with a problem (.status, .code, .detail, .body)
        InvalidRequest              422
          InvalidPhoneNumber
          InvalidEmailAddress
          IdempotencyKeyReused
        Unauthorized                401
        Forbidden                   403
          InsufficientScope
          CountryNotAllowed
        NotFound                    404
        Conflict                    409 (a keyed request still in progress: tried again)
          VerificationNotPending
          NoVerifiedFactor
        PayloadTooLarge             413
        UnsupportedMediaType        415
        RateLimited                 429 (.limit, .retry_after)
          MaxAttemptsReached        the verification is used up: start a new one, not wait
          UserLocked
        ServiceUnavailable          503 (.retry_after)
        ServerError                 any other 5xx
"""

from __future__ import annotations

from typing import Any

import httpx


class TwostepError(Exception):
    """Anything this client raises."""


class TwostepConnectionError(TwostepError):
    """No answer from the API (it is unreachable, or did not answer in time), after retries
    where a retry was safe."""


class UnexpectedAnswer(TwostepError):
    """A success this client cannot read: not JSON, a field missing, a status word it does not
    know (a newer server: upgrade the client), or a proxy's page instead of the API's."""


class ApiError(TwostepError):
    """The API answered with a problem (``application/problem+json``)."""

    status = 0
    code = "error"

    def __init__(self, response: httpx.Response, body: dict[str, Any]) -> None:
        self.status = response.status_code
        self.code = str(body.get("code") or type(self).code)
        self.detail = str(body.get("detail") or response.reason_phrase)
        self.body = body
        self.request_id = response.headers.get("X-Request-Id")
        super().__init__(f"{self.status} {self.code}: {self.detail}")


class InvalidRequest(ApiError):
    code = "invalid_request"


class InvalidPhoneNumber(InvalidRequest):
    code = "invalid_phone_number"


class InvalidEmailAddress(InvalidRequest):
    code = "invalid_email_address"


class IdempotencyKeyReused(InvalidRequest):
    code = "idempotency_key_reused"


class Unauthorized(ApiError):
    code = "unauthorized"


class Forbidden(ApiError):
    code = "forbidden"


class InsufficientScope(Forbidden):
    code = "insufficient_scope"


class CountryNotAllowed(Forbidden):
    code = "country_not_allowed"


class NotFound(ApiError):
    code = "not_found"


class Conflict(ApiError):
    code = "conflict"


class VerificationNotPending(Conflict):
    code = "verification_not_pending"


class NoVerifiedFactor(Conflict):
    code = "no_verified_factor"


class ChannelMismatch(Conflict):
    code = "channel_mismatch"


class LastStrongFactor(Conflict):
    code = "last_strong_factor"


class FactorNotVerified(Conflict):
    code = "factor_not_verified"


class PasskeysNotSetUp(Conflict):
    """The tenant's login site is not the relying party yet: ``twostep tenants passkeys``."""

    code = "passkeys_not_set_up"


class PayloadTooLarge(ApiError):
    code = "payload_too_large"


class UnsupportedMediaType(ApiError):
    code = "unsupported_media_type"


class _Retryable(ApiError):
    """An answer that says when to try again (``Retry-After``, in seconds)."""

    def __init__(self, response: httpx.Response, body: dict[str, Any]) -> None:
        super().__init__(response, body)
        self.retry_after = retry_after_seconds(response)


class RateLimited(_Retryable):
    """A limit refused the request; ``limit`` names it (``per_destination``,
    ``resend_cooldown``, …) and ``retry_after`` says when it lets the next one through."""

    code = "rate_limited"

    def __init__(self, response: httpx.Response, body: dict[str, Any]) -> None:
        super().__init__(response, body)
        limit = body.get("limit")
        self.limit = None if limit is None else str(limit)


class MaxAttemptsReached(RateLimited):
    """Every check the verification allows has been used: start a new verification (a new
    challenge) rather than wait; ``retry_after`` is only when this one would have expired."""

    code = "max_attempts_reached"


class UserLocked(RateLimited):
    """Too many wrong codes for this user or number; ``retry_after`` says for how long."""

    code = "user_locked"


class ServiceUnavailable(_Retryable):
    code = "service_unavailable"


class ServerError(ApiError):
    code = "internal_error"


_BY_CODE: dict[str, type[ApiError]] = {
    error.code: error
    for error in (
        InvalidRequest,
        InvalidPhoneNumber,
        InvalidEmailAddress,
        IdempotencyKeyReused,
        Unauthorized,
        Forbidden,
        InsufficientScope,
        CountryNotAllowed,
        NotFound,
        Conflict,
        VerificationNotPending,
        NoVerifiedFactor,
        ChannelMismatch,
        LastStrongFactor,
        FactorNotVerified,
        PasskeysNotSetUp,
        PayloadTooLarge,
        UnsupportedMediaType,
        RateLimited,
        MaxAttemptsReached,
        UserLocked,
        ServiceUnavailable,
    )
}
_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_for(response: httpx.Response) -> ApiError:
    """The exception for an answer that is not a success: by its problem ``code``, else by its
    status (a proxy's bare 502 has no problem body)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    error = _BY_CODE.get(str(body.get("code")))
    if error is None:
        fallback = ServerError if response.status_code >= 500 else ApiError
        error = _BY_STATUS.get(response.status_code, fallback)
    return error(response, body)


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # absent, or an HTTP date (the API sends seconds)
